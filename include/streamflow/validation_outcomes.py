"""What one expectation's outcome is, how the task log tells it, and where it is kept.

`streamflow.validation` runs the suites and returns these outcomes (so does `streamflow.history`
for the checks against history); this module gives them their verdict (`blocks_publish`,
`raise_if_failed`), their text in the task log (`describe_failure`, `summarise`), their rows in
`validation_results` and `validation_failing_keys` (`record_outcomes`) and their XCom form.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from streamflow import queries
from streamflow.errors import DataError
from streamflow.registry import KEY

if TYPE_CHECKING:
    import psycopg


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
    # Counts and samples are computed for failures only (see validation.run_suite); None on a pass.
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)  # [{"user_id": ..., "value": ...}]
    why: str = ""
    error: str | None = None
    expectation_type: str = ""  # the GX expectation (`expectation` may be a description instead)
    severity: str = "fail"  # "fail": a failure blocks the publish; "warn": recorded, shown, logged, not blocking
    figures: dict[str, Any] | None = None  # a check against history: this month, previous, bound (history.py)
    # Every failing row (user_id, value) of a failed expectation, up to validation.FAILING_KEYS_LIMIT; not sent to XCom.
    failing_keys: list[tuple[Any, Any]] = field(default_factory=list, repr=False)


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
            (result_id,) = cursor.execute(queries.text("record_validation_result"), {
                "run_id": run["run_id"], "month": run["month"], "as_of": run["as_of"], "table_name": o.table,
                "expectation": o.expectation, "column_name": o.column, "kwargs": json.dumps(o.kwargs, default=str),
                "success": o.success, "element_count": o.element_count, "unexpected_count": o.unexpected_count,
                "unexpected_percent": o.unexpected_percent, "samples": json.dumps(o.samples, default=str),
                "error": o.error, "expectation_type": o.expectation_type, "why": o.why, "severity": o.severity,
                "figures": None if o.figures is None else json.dumps(o.figures, default=str),
            }).fetchone()
            if o.failing_keys:
                keys_copy = "COPY validation_failing_keys (validation_result_id, user_id, value) FROM STDIN"
                with cursor.copy(keys_copy) as copy:
                    for key, value in o.failing_keys:
                        copy.write_row((result_id, key, None if value is None else str(value)))


def outcomes_as_dicts(outcomes: list[Outcome]) -> list[dict]:
    """The outcomes for XCom: everything but the (long) failing-key lists."""
    return [{k: v for k, v in asdict(o).items() if k != "failing_keys"} for o in outcomes]
