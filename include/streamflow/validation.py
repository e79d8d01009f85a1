"""Great Expectations 1.x suites, run inside PostgreSQL on a run's staged month (or a live table).

Suites are data: `expectations.yml` (per-table rules, each with its reason) plus what the
registry implies for every table (`registry_expectations`). The same file declares the checks
against history (`check:` entries, run by `streamflow.history`, not by GX). GX runs them through its SQL
datasource, so every row is checked by the database; no sample is pulled into Python.
`great_expectations` is imported inside `run_suite` only: importing it costs seconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamflow import staging
from streamflow.errors import DataError
from streamflow.registry import KEY, USERS, Table

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SUITES_FILE = Path(__file__).with_name("expectations.yml")
SAMPLE_SIZE = 10
#: At most this many failing user_ids of one expectation are kept in `validation_failing_keys`
#: (validation_results.unexpected_count keeps the true count).
FAILING_KEYS_LIMIT = 100_000
QUERY_EXPECTATION = "unexpected_rows_expectation"
COVERAGE_GAP = "gap"  # the column of the coverage query that says which side is missing


class ValidationFailed(DataError):
    """At least one expectation failed; the message has one block per failure."""


@dataclass(frozen=True)
class Outcome:
    """One expectation's result as plain data (logged, stored, pushed to XCom)."""

    table: str
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    # Counts and samples are computed for failures only (see run_suite); None on a pass.
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)  # [{"user_id": ..., "value": ...}]
    why: str = ""
    error: str | None = None
    expectation_type: str = ""  # the GX expectation (`expectation` may be a description instead)
    severity: str = "fail"  # "fail": a failure blocks the publish; "warn": recorded, shown, logged, not blocking
    figures: dict[str, Any] | None = None  # a check against history: this month, previous, bound (history.py)
    # Every failing row (user_id, value) of a failed expectation, up to FAILING_KEYS_LIMIT; not sent to XCom.
    failing_keys: list[tuple[Any, Any]] = field(default_factory=list, repr=False)


@cache
def suites_file() -> dict[str, list[dict]]:
    """`expectations.yml` as written: row rules (`type:`) and checks against history (`check:`)."""
    import yaml

    return yaml.safe_load(SUITES_FILE.read_text(encoding="utf-8"))


def _quoted(*names: str) -> str:
    """A (qualified) identifier quoted as psycopg.sql.Identifier quotes it (names here are registry or
    staging names, never input)."""
    return ".".join('"' + name.replace('"', '""') + '"' for name in names)


def coverage_query(table: Table, schema: str | None = None) -> str:
    """Rows of `table` without a user and users without a row; `{batch}` is the table validated.

    On a staged month (`schema`): every user of this month's users.csv must have a row in this
    month's file (a live row from an earlier month does not cover it), and every row must have a
    user, staged or already live. When users.csv is a replay (staged empty: the very file the
    month was published from), this month's users are the user_ids kept from that file
    (`streamflow_month_users`, sql/009). One hash full join, both directions at once; not NOT IN,
    which is quadratic past work_mem.
    """
    users = _quoted(USERS)
    rows = f"SELECT {KEY} FROM {{batch}}"
    if not schema:
        return (f"SELECT coalesce(known.{KEY}, batch_rows.{KEY}) AS {KEY}, "
                f"CASE WHEN known.{KEY} IS NULL THEN 'a row without a user' ELSE 'a user without a row' END "
                f"AS {COVERAGE_GAP} FROM {users} AS known FULL JOIN ({rows}) AS batch_rows "
                f"ON batch_rows.{KEY} = known.{KEY} WHERE known.{KEY} IS NULL OR batch_rows.{KEY} IS NULL")
    # The schema is a checked staging name (16 hex digits), quoted as a literal: no input reaches it.
    month_users = f"SELECT {KEY} FROM streamflow_month_users('{staging.checked(schema)}')"
    return (f"SELECT coalesce(month_users.{KEY}, batch_rows.{KEY}) AS {KEY}, "
            f"CASE WHEN month_users.{KEY} IS NULL THEN 'a row without a user' ELSE 'a user without a row' END "
            f"AS {COVERAGE_GAP} FROM ({month_users}) AS month_users FULL JOIN ({rows}) AS batch_rows "
            f"ON batch_rows.{KEY} = month_users.{KEY} WHERE batch_rows.{KEY} IS NULL"
            # A row whose user is not in this month's users.csv is a gap only when no month knows the user.
            f" OR (month_users.{KEY} IS NULL AND NOT EXISTS (SELECT FROM {users} AS live"
            f" WHERE live.{KEY} = batch_rows.{KEY}))")


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
    batch_table = _quoted(schema, table.name) if schema else _quoted(table.name)
    return [_with_every_unexpected_row(sqlalchemy_url, batch_table, o, spec)
            if not o.success and spec["type"] == QUERY_EXPECTATION else o
            for o, spec in zip(outcomes, specs, strict=True)]


def _with_every_unexpected_row(sqlalchemy_url: str, batch_table: str, outcome: Outcome, spec: dict) -> Outcome:
    """GX keeps a few hundred rows of a failed query expectation: run its query for all of them."""
    import dataclasses

    import sqlalchemy

    query = spec["kwargs"]["unexpected_rows_query"].replace("{batch}", batch_table)
    engine = sqlalchemy.create_engine(sqlalchemy_url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(f"{query} LIMIT {int(FAILING_KEYS_LIMIT)}").fetchall()
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


def blocks_publish(outcome: Outcome) -> bool:
    return not outcome.success and outcome.severity == "fail"


def describe_failure(outcome: Outcome) -> str:
    """One readable block: table, expectation, column, kwargs, counts, sample values with user_ids
    (a check against history: this month's figure, the previous month's and the bound)."""
    kwargs = json.dumps(outcome.kwargs, default=str)
    verdict = "FAILED" if blocks_publish(outcome) else "WARNING"
    lines = [f"{verdict} {outcome.table}.{outcome.column or '*'}: {outcome.expectation} {kwargs}"]
    figures = outcome.figures
    if figures:
        previous = (f"{figure_text(figures['previous'])} (as_of {figures['previous_as_of']})"
                    if figures["previous_as_of"] else "none")
        lines.append(f"    {figures['metric']}: this month {figure_text(figures['this'])} (as_of {figures['as_of']}), "
                     f"previous month {previous}; bound: {figures['bound']}")
        lines.append(f"    accepted for this run (accept: {figures['check_id']}): it does not block the publish"
                     if figures["accepted"] else
                     f"    a real change? trigger the month again with accept: [\"{figures['check_id']}\"]")
    if outcome.error:
        lines.append(f"    error: {outcome.error}")
    if outcome.unexpected_count is not None:
        of_rows = f" of {outcome.element_count} rows" if outcome.element_count is not None else ""
        percent = f" ({outcome.unexpected_percent:.2f}%)" if outcome.unexpected_percent is not None else ""
        lines.append(f"    unexpected: {outcome.unexpected_count}{of_rows}{percent}")
    if outcome.samples:
        shown = ", ".join(f"{s[KEY]}={s['value']!r}" if s.get("value") is not None else str(s[KEY])
                          for s in outcome.samples)
        lines.append(f"    sample ({KEY}=value): {shown}")
    lines.append(f"    rule: {outcome.why}")
    return "\n".join(lines)


def figure_text(value: Any) -> str:
    """A figure as the log and the bounds write it: floats to 4 significant digits, the rest as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarise(outcomes: list[Outcome]) -> str:
    """The log text for one table: its verdict (counted as the Validation view counts), then a block
    per failure and warning, blocking failures first. Skipped checks against history are counted
    with their reasons, not passed."""
    from collections import Counter

    failed = [o for o in outcomes if not o.success]
    blocking = sum(map(blocks_publish, failed))
    skipped = Counter(o.figures["skipped"] for o in outcomes if o.success and o.figures and o.figures["skipped"])
    passed = len(outcomes) - len(failed) - sum(skipped.values())
    table = outcomes[0].table if outcomes else "?"
    header = f"{table}: {passed}/{len(outcomes)} expectations passed"
    if blocking:
        header += f", {blocking} failed"
    if len(failed) > blocking:
        header += f", {len(failed) - blocking} warning(s)"
    if skipped:
        reasons = "; ".join(f"{count}: {reason}" for reason, count in skipped.most_common())
        header += f", {sum(skipped.values())} skipped ({reasons})"
    return "\n".join([header, *map(describe_failure, sorted(failed, key=lambda o: not blocks_publish(o)))])


def raise_if_failed(outcomes: list[Outcome]) -> None:
    """Raise on any failure that blocks the publish (warnings and accepted checks do not)."""
    failed = [o for o in outcomes if blocks_publish(o)]
    if failed:
        raise ValidationFailed(f"{len(failed)} expectation(s) failed:\n" + "\n".join(map(describe_failure, failed)))


def record_outcomes(conn: psycopg.Connection, run: dict[str, str], outcomes: list[Outcome]) -> None:
    """Keep every outcome, pass or fail, in `validation_results`, and the failing rows of each
    failure in `validation_failing_keys` (bound parameters and COPY only)."""
    with conn.transaction(), conn.cursor() as cursor:
        for o in outcomes:
            (result_id,) = cursor.execute(
                "INSERT INTO validation_results (run_id, month, as_of, table_name, expectation, column_name, kwargs,"
                " success, element_count, unexpected_count, unexpected_percent, samples, error, expectation_type, why,"
                " severity, figures)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)"
                " RETURNING id",
                (run["run_id"], run["month"], run["as_of"], o.table, o.expectation, o.column,
                 json.dumps(o.kwargs, default=str), o.success, o.element_count, o.unexpected_count,
                 o.unexpected_percent, json.dumps(o.samples, default=str), o.error, o.expectation_type, o.why,
                 o.severity, None if o.figures is None else json.dumps(o.figures, default=str)),
            ).fetchone()
            if o.failing_keys:
                keys_copy = "COPY validation_failing_keys (validation_result_id, user_id, value) FROM STDIN"
                with cursor.copy(keys_copy) as copy:
                    for key, value in o.failing_keys:
                        copy.write_row((result_id, key, None if value is None else str(value)))


def outcomes_as_dicts(outcomes: list[Outcome]) -> list[dict]:
    """The outcomes for XCom: everything but the (long) failing-key lists."""
    return [{k: v for k, v in asdict(o).items() if k != "failing_keys"} for o in outcomes]
