"""Great Expectations 1.x suites, run inside PostgreSQL on whole live tables.

Suites are data: `expectations.yml` (per-table rules, each with its reason) plus what the
registry implies for every table (`registry_expectations`). GX runs them through its SQL
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

from streamflow.errors import DataError
from streamflow.registry import KEY, USERS, Table

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SUITES_FILE = Path(__file__).with_name("expectations.yml")
SAMPLE_SIZE = 10
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


@cache
def _suites_file() -> dict[str, list[dict]]:
    import yaml

    return yaml.safe_load(SUITES_FILE.read_text(encoding="utf-8"))


def registry_expectations(table: Table) -> list[dict]:
    """What every table must satisfy, from its registry entry."""
    specs = [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": list(table.column_names), "exact_match": True},
         "why": "the live table has exactly the registry's columns (schema drift check)."},
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
            # One hash full join, both directions at once; not NOT IN, which is quadratic past work_mem.
            "kwargs": {"unexpected_rows_query":
                       f"SELECT coalesce({USERS}.{KEY}, batch_rows.{KEY}) AS {KEY}, "
                       f"CASE WHEN {USERS}.{KEY} IS NULL THEN 'a row without a user' "
                       f"ELSE 'a user without a row' END AS {COVERAGE_GAP} "
                       f"FROM {USERS} FULL JOIN {{batch}} AS batch_rows ON batch_rows.{KEY} = {USERS}.{KEY} "
                       f"WHERE {USERS}.{KEY} IS NULL OR batch_rows.{KEY} IS NULL"},
            "description": f"every user has a {table.name} row and every row a user",
            "why": "a user without a row would silently drop out of training sets; "
                   "a row without a user cannot be joined into one.",
        })
    return specs


def suite_spec(table: Table) -> list[dict]:
    """The whole suite of one table: registry-implied rules, then `expectations.yml`'s."""
    return registry_expectations(table) + list(_suites_file().get(table.name, []))


def run_suite(sqlalchemy_url: str, table: Table) -> list[Outcome]:
    """Validate every row of one live table; return one Outcome per expectation.

    Args:
        sqlalchemy_url: SQLAlchemy URL of the warehouse (`postgresql+psycopg://...`).
        table: registry entry of the table to validate.
    """
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    # GX warns once per sampled NUMERIC ("lossy conversion to float"): noise in a task log.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_postgres(name="warehouse", connection_string=sqlalchemy_url)
    batch = source.add_table_asset(name=table.name, table_name=table.name).add_batch_definition_whole_table(
        "whole_table").get_batch()
    specs = suite_spec(table)

    def validate(indexes: list[int], result_format: dict) -> dict[int, dict]:
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
            **result_format, "partial_unexpected_count": SAMPLE_SIZE,
            "unexpected_index_column_names": [KEY], "return_unexpected_index_query": False,
        })
        return {item.expectation_config.meta["spec_index"]: item.to_json_dict() for item in result.results}

    # Pass or fail first: GX folds the column checks into one aggregate scan per table. Samples
    # cost a scan per expectation even when nothing is found, so only failures fetch them, in a
    # second pass: query-based expectations name their rows only under COMPLETE (GX caps them at
    # a few hundred); column expectations use SUMMARY, whose samples are bounded.
    results = validate(list(range(len(specs))), {"result_format": "BOOLEAN_ONLY"})
    failed = [index for index, item in results.items() if not item.get("success")]
    for query_based, result_format in ((False, "SUMMARY"), (True, "COMPLETE")):
        indexes = [index for index in failed if (specs[index]["type"] == QUERY_EXPECTATION) == query_based]
        if indexes:
            results.update(validate(indexes, {"result_format": result_format}))
    return [_outcome(table, spec, results[index]) for index, spec in enumerate(specs)]


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
    samples = [{KEY: row.get(KEY), "value": row.get(column)} for row in result.get("partial_unexpected_index_list") or []]
    unexpected = result.get("unexpected_count")
    if spec["type"] == QUERY_EXPECTATION:
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        samples = [{KEY: row.get(KEY), "value": row.get(COVERAGE_GAP)} for row in rows[:SAMPLE_SIZE]]
        unexpected = result.get("observed_value")
    element_count = result.get("element_count")
    percent = result.get("unexpected_percent")
    return Outcome(
        table=table.name, expectation=spec.get("description") or spec["type"], column=column,
        kwargs={k: v for k, v in spec["kwargs"].items() if k != "column"}, success=bool(item.get("success")),
        element_count=element_count, unexpected_count=unexpected,
        unexpected_percent=round(percent, 4) if percent is not None else None,
        samples=_jsonable(samples), why=spec.get("why", ""), error=error, expectation_type=spec["type"],
    )


def describe_failure(outcome: Outcome) -> str:
    """One readable block: table, expectation, column, kwargs, counts, sample values with user_ids."""
    lines = [f"FAILED {outcome.table}.{outcome.column or '*'}: {outcome.expectation} {json.dumps(outcome.kwargs, default=str)}"]
    if outcome.error:
        lines.append(f"    error: {outcome.error}")
    if outcome.unexpected_count is not None:
        of_rows = f" of {outcome.element_count} rows" if outcome.element_count is not None else ""
        percent = f" ({outcome.unexpected_percent:.2f}%)" if outcome.unexpected_percent is not None else ""
        lines.append(f"    unexpected: {outcome.unexpected_count}{of_rows}{percent}")
    if outcome.samples:
        shown = ", ".join(f"{s[KEY]}={s['value']!r}" if s.get("value") is not None else str(s[KEY]) for s in outcome.samples)
        lines.append(f"    sample ({KEY}=value): {shown}")
    lines.append(f"    rule: {outcome.why}")
    return "\n".join(lines)


def summarise(outcomes: list[Outcome]) -> str:
    """The log text for one table: a block per failure, one line for what passed."""
    failed = [o for o in outcomes if not o.success]
    passed = len(outcomes) - len(failed)
    table = outcomes[0].table if outcomes else "?"
    header = f"{table}: {passed}/{len(outcomes)} expectations passed"
    return "\n".join([header, *map(describe_failure, failed)])


def raise_if_failed(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise ValidationFailed(f"{len(failed)} expectation(s) failed:\n" + "\n".join(map(describe_failure, failed)))


def record_outcomes(conn: psycopg.Connection, run: dict[str, str], outcomes: list[Outcome]) -> None:
    """Keep every outcome, pass or fail, in `validation_results` (bound parameters only)."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO validation_results (run_id, month, as_of, table_name, expectation, column_name, kwargs,"
            " success, element_count, unexpected_count, unexpected_percent, samples, error, expectation_type, why)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
            [(run["run_id"], run["month"], run["as_of"], o.table, o.expectation, o.column,
              json.dumps(o.kwargs, default=str), o.success, o.element_count, o.unexpected_count,
              o.unexpected_percent, json.dumps(o.samples, default=str), o.error, o.expectation_type, o.why)
             for o in outcomes],
        )


def outcomes_as_dicts(outcomes: list[Outcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
