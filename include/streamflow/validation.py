"""Great Expectations 1.x suites, run inside PostgreSQL on a run's staged month (or a live table).

Suites are data: `expectations.yml` (per-table rules, each with its reason) plus what the
registry implies for every table (`registry_expectations`). The same file declares the checks
against history (`check:` entries, run by `streamflow.history`, not by GX). GX runs them through its SQL
datasource, so every row is checked by the database; no sample is pulled into Python.
`great_expectations` is imported inside `run_suite` only: importing it costs seconds. What an
outcome is, how the log tells it and where it is kept: `streamflow.validation_outcomes`.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow import queries, staging
from streamflow.registry import KEY, Table

# What callers (streamflow.history, the tests) import from here: the outcomes the suites return, and their
# verdict, text and record, which live in validation_outcomes.
from streamflow.validation_outcomes import (  # noqa: F401
    Outcome,
    ValidationFailed,
    blocks_publish,
    describe_failure,
    figure_text,
    outcomes_as_dicts,
    raise_if_failed,
    record_outcomes,
    summarise,
)

if TYPE_CHECKING:
    from psycopg import sql

log = logging.getLogger(__name__)

SUITES_FILE = Path(__file__).with_name("expectations.yml")
SAMPLE_SIZE = 10
#: At most this many failing user_ids of one expectation are kept in `validation_failing_keys`
#: (validation_results.unexpected_count keeps the true count).
FAILING_KEYS_LIMIT = 100_000
QUERY_EXPECTATION = "unexpected_rows_expectation"
COVERAGE_GAP = "gap"  # the column of the coverage query that says which side is missing


@cache
def suites_file() -> dict[str, list[dict]]:
    """`expectations.yml` as written: row rules (`type:`) and checks against history (`check:`)."""
    import yaml

    return yaml.safe_load(SUITES_FILE.read_text(encoding="utf-8"))


def coverage_query(table: Table, schema: str | None = None) -> str:
    """Rows of `table` without a user and users without a row; `{batch}` is the table validated
    (`sql/queries/coverage_of_staged_month.sql` on a staged month, `coverage_of_live_table.sql` on a live one).

    GX takes the query as text, and keeps it as the expectation's kwarg (stored, shown by the
    Validation view): it is rendered on one line, its comments left out, `{batch}` left for GX.
    """
    from psycopg import sql

    name = "coverage_of_staged_month" if schema else "coverage_of_live_table"
    code = [line for line in queries.text(name).splitlines() if not line.lstrip().startswith("--")]
    template = sql.SQL(" ".join(" ".join(code).split()))
    if not schema:
        return template.format(batch=sql.SQL("{batch}")).as_string(None)
    # Not a bound parameter (GX runs the text as it is): a checked staging name, quoted as a literal.
    return template.format(batch=sql.SQL("{batch}"),
                           staging_schema=sql.Literal(staging.checked(schema))).as_string(None)


def registry_expectations(table: Table, schema: str | None = None, as_of: str | None = None) -> list[dict]:
    """What every table must satisfy, from its registry entry (`schema`: validating a staged month;
    `as_of`: the month's, no date may be after it)."""
    specs = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": list(table.column_names), "exact_match": True},
         "why": "the validated table (staged or live) has exactly the registry's columns (schema drift check)."},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
         "why": "an empty table means a load went missing."},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": KEY},
         "why": "the entity key of every feature and label."},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": KEY},
         "why": "one row per user."},
    ]
    if table.depends_on_users:
        specs.append({
            "type": QUERY_EXPECTATION,
            "kwargs": {"unexpected_rows_query": coverage_query(table, schema)},
            "description": f"every user has a {table.name} row and every row a user",
            "why": "a user without a row would silently drop out of training sets, or be covered by an older "
                   "month's row; a row without a user cannot be joined into one.",
        })
    if as_of:
        specs += [{"type": "expect_column_values_to_be_between", "kwargs": {"column": c.name, "max_value": as_of},
                   "why": "a date after the month's as_of is information from after the snapshot: training on it "
                          "leaks the future."}
                  for c in table.columns if c.pg_type == "date"]
    return specs


def suite_spec(table: Table, schema: str | None = None, as_of: str | None = None) -> list[dict]:
    """The whole row-rule suite of one table: registry-implied rules, then `expectations.yml`'s."""
    declared = [spec for spec in suites_file().get(table.name, []) if "type" in spec]
    return registry_expectations(table, schema, as_of) + declared


def run_suite(sqlalchemy_url: str, table: Table, schema: str | None = None, as_of: str | None = None
              ) -> list[Outcome]:
    """Validate every row of one table; return one Outcome per expectation.

    Args:
        sqlalchemy_url: SQLAlchemy URL of the warehouse (`postgresql+psycopg://...`).
        table: registry entry of the table to validate.
        schema: a run's staging schema: validate the staged month (the DAG's way); None: the live table.
        as_of: the month's as_of: no date may be after it (None: not checked).
    """
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from psycopg import sql

    # GX warns once per sampled NUMERIC ("lossy conversion to float"): noise in a task log.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_postgres(name="warehouse", connection_string=sqlalchemy_url)
    asset = source.add_table_asset(name=table.name, table_name=table.name, schema_name=schema)
    batch = asset.add_batch_definition_whole_table("whole_table").get_batch()
    specs = suite_spec(table, schema, as_of)

    def validate(indexes: list[int], result_format: dict, rows_kept: int = SAMPLE_SIZE) -> dict[int, dict]:
        suite = gx.ExpectationSuite(name=f"{table.name}_suite")
        for index in indexes:
            spec = specs[index]
            config = ExpectationConfiguration(type=spec["type"], kwargs=dict(spec["kwargs"]),
                                              description=spec.get("description"),
                                              # `notes`: where GX's own renderers (Data Docs) show a reason.
                                              meta={"why": spec.get("why", ""), "notes": spec.get("why", ""),
                                                    "spec_index": index})
            suite.add_expectation(config.to_domain_obj())
        result = batch.validate(suite, result_format={
            # On SQL, GX's COMPLETE too fetches at most `partial_unexpected_count` failing rows.
            **result_format, "partial_unexpected_count": rows_kept,
            "unexpected_index_column_names": [KEY], "return_unexpected_index_query": False,
        })
        return {item.expectation_config.meta["spec_index"]: item.to_json_dict() for item in result.results}

    # Pass or fail first: GX folds the column checks into one aggregate scan per table. Failing
    # rows cost a scan per expectation even when nothing is found, so only failures fetch them,
    # in a second pass under COMPLETE: every failing row, with its user_id and value.
    results = validate(list(range(len(specs))), {"result_format": "BOOLEAN_ONLY"})
    failed = [index for index, item in results.items() if not item.get("success")]
    if failed:
        results.update(validate(failed, {"result_format": "COMPLETE"}, FAILING_KEYS_LIMIT))
    outcomes = [_outcome(table, spec, results[index]) for index, spec in enumerate(specs)]
    batch_table = sql.Identifier(schema, table.name) if schema else sql.Identifier(table.name)
    return [_with_every_unexpected_row(sqlalchemy_url, batch_table, o, spec)
            if not o.success and spec["type"] == QUERY_EXPECTATION else o
            for o, spec in zip(outcomes, specs, strict=True)]


def _with_every_unexpected_row(sqlalchemy_url: str, batch_table: sql.Identifier, outcome: Outcome,
                               spec: dict) -> Outcome:
    """GX keeps a few hundred rows of a failed query expectation: run its query for all of them."""
    import dataclasses

    import sqlalchemy
    from psycopg import sql

    # `{batch}` filled as GX fills it (str.format's braces, which psycopg.sql reads alike), here with the table.
    query = sql.SQL("{} LIMIT {}").format(sql.SQL(spec["kwargs"]["unexpected_rows_query"]).format(batch=batch_table),
                                          sql.Literal(FAILING_KEYS_LIMIT)).as_string(None)
    engine = sqlalchemy.create_engine(sqlalchemy_url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(query).fetchall()
    finally:
        engine.dispose()
    return dataclasses.replace(outcome, failing_keys=[(row[0], row[1]) for row in rows])


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _outcome(table: Table, spec: dict, item: dict) -> Outcome:
    result = item.get("result") or {}
    exception = item.get("exception_info") or {}
    error = exception.get("exception_message") if exception.get("raised_exception") else None
    if error is None and isinstance(exception, dict):  # per-metric errors are keyed by metric id
        error = next((info.get("exception_message") for info in exception.values()
                      if isinstance(info, dict) and info.get("exception_message")), None)
    column = spec["kwargs"].get("column")
    failing = [(row.get(KEY), row.get(column)) for row in result.get("unexpected_index_list") or []]
    unexpected = result.get("unexpected_count")
    if spec["type"] == QUERY_EXPECTATION:
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        failing = [(row.get(KEY), row.get(COVERAGE_GAP)) for row in rows]
        unexpected = result.get("observed_value")
    samples = [{KEY: key, "value": value} for key, value in failing[:SAMPLE_SIZE]]
    element_count = result.get("element_count")
    percent = result.get("unexpected_percent")
    return Outcome(
        table=table.name, expectation=spec.get("description") or spec["type"], column=column,
        kwargs={k: v for k, v in spec["kwargs"].items() if k != "column"}, success=bool(item.get("success")),
        element_count=element_count, unexpected_count=unexpected,
        unexpected_percent=round(percent, 4) if percent is not None else None,
        samples=_jsonable(samples), why=spec.get("why", ""), error=error, expectation_type=spec["type"],
        failing_keys=failing[:FAILING_KEYS_LIMIT], severity=spec.get("severity", "fail"),
    )
