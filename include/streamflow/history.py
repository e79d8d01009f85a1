"""Checks against history: a month's figures (`streamflow.metrics`) against the months published before it.

Row rules judge each row; these judge the month as a whole, so that a month that parses and
passes every row rule but is damaged as a whole (an export cut short, a column collapsed to
one value, a column that went blank, a shifted mean or churn rate) is stopped before publish.
They are declared in `expectations.yml` (entries with `check:`), beside the row rules:

* `every_table:` checks run on every table, `every_column:` on every column they fit (by type);
* an entry under a table with the same `check` (and `column`) replaces the default there, and
  `severity: off` silences it.

Each check gives an `Outcome` like a row rule, with `figures`: this month's figure, the previous
month's, the bound, the trailing history (for the trend chart), or why it was skipped (no
history yet). A failed `fail` check blocks the publish unless the run accepts it by id
(`<table>.<check>[.<column>]`, the DAG's `accept` param; recorded in the ledger).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamflow.registry import KEY, TABLES, Table
from streamflow.validation import Outcome, suites_file
from streamflow.validation import figure_text as figure

if TYPE_CHECKING:
    from collections.abc import Callable

    from streamflow.metrics import TableMetrics

SEVERITIES = ("fail", "warn", "off")
#: A check id as the `accept` param names it: `<table>.<check>` or `<table>.<check>.<column>`.
CHECK_ID_PATTERN = r"^[a-z0-9_]+\.[a-z_]+(\.[a-z0-9_]+)?$"
_NUMBERS = ("numeric", "integer")


@dataclass(frozen=True)
class Verdict:
    success: bool
    bound: str  # the bound as a person reads it, with its figures
    skipped: str | None = None


@dataclass(frozen=True)
class Check:
    """One kind of check: the figure it reads, where it applies by default, and how it judges."""

    name: str
    metric: str
    per_column: bool
    types: tuple[str, ...]  # the column types an `every_column` entry applies it to
    description: str
    # (kwargs, this month's figure, earlier months' figures oldest first, this month's figures) -> Verdict
    judge: Callable[[dict, Any, list[Any], TableMetrics], Verdict]
    # False: judged against this month's own counts (users left or joined against last month's users),
    # so a previous month without the figure (the first one has no users_left) does not skip it.
    needs_previous_figure: bool = True


def _ratio(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    previous = earlier[-1]
    low, high = previous * kwargs["min_ratio"], previous * kwargs["max_ratio"]
    bound = f"{kwargs['min_ratio']}x..{kwargs['max_ratio']}x of the previous month ({figure(low)}..{figure(high)})"
    return Verdict(low <= this <= high, bound)


def _share_of_previous_users(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    users = (month.users_left or 0) + (month.users_kept or 0)  # last month's file: who left and who stayed
    most = kwargs["max_fraction"] * users
    return Verdict(this <= most, f"at most {kwargs['max_fraction']:.0%} of the previous month's {users} users "
                                 f"({figure(most)})")


def _null_fraction_jump(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    most = earlier[-1] + kwargs["max_increase"]
    return Verdict(this <= most, f"at most {figure(kwargs['max_increase'])} above the previous month "
                                 f"({figure(min(most, 1.0))})")


def _single_value(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    previous = earlier[-1]
    if previous <= 1:
        return Verdict(True, "more than one value, as the previous month had",
                       skipped=f"the previous month had {previous} value(s) already")
    return Verdict(this != 1, f"more than one value (the previous month had {previous})")


def _mean_change(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    previous = earlier[-1]
    if "max_abs_change" in kwargs:
        most = kwargs["max_abs_change"]
        text = f"within ±{figure(most)} of the previous month"
    else:
        most = kwargs["max_relative_change"] * abs(previous)
        text = f"within ±{kwargs['max_relative_change']:.0%} of the previous month"
    return Verdict(abs(this - previous) <= most, f"{text} ({figure(previous - most)}..{figure(previous + most)})")


def _stddev_change(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    previous, ratio = earlier[-1], kwargs["max_ratio"]
    low, high = previous / ratio, previous * ratio
    return Verdict(low <= this <= high, f"1/{ratio}x..{ratio}x of the previous month ({figure(low)}..{figure(high)})")


def _mean_zscore(kwargs: dict, this: Any, earlier: list[Any], month: TableMetrics) -> Verdict:
    window = earlier[-kwargs.get("months", len(earlier)):]
    if len(window) < kwargs["min_months"]:
        return Verdict(True, f"|z| <= {kwargs['max_z']}", skipped=f"needs {kwargs['min_months']} published months "
                                                                   f"before this one, has {len(window)}")
    center = statistics.fmean(window)
    # A floor under the spread: a few months of nearly equal means would make any change "many sigmas".
    spread = max(statistics.stdev(window), kwargs["min_relative_sd"] * abs(center), 1e-12)
    z = (this - center) / spread
    return Verdict(abs(z) <= kwargs["max_z"],
                   f"|z| <= {kwargs['max_z']} over the trailing {len(window)} months (mean {figure(center)}, "
                   f"sd {figure(spread)}; z = {z:.2f})")


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("rows_change", "rows", False, (), "rows against the previous month", _ratio),
    Check("users_left", "users_left", False, (), "users who left since the previous month",
          _share_of_previous_users, needs_previous_figure=False),
    Check("users_joined", "users_joined", False, (), "users who joined since the previous month",
          _share_of_previous_users, needs_previous_figure=False),
    Check("null_fraction_jump", "null_fraction", True, ("text", "date", "boolean", *_NUMBERS),
          "null fraction against the previous month", _null_fraction_jump),
    Check("single_value", "distinct_count", True, ("text", "date", "boolean", *_NUMBERS),
          "distinct values: not collapsed to one", _single_value),
    Check("mean_change", "mean", True, _NUMBERS, "mean against the previous month", _mean_change),
    Check("stddev_change", "stddev", True, _NUMBERS, "standard deviation against the previous month", _stddev_change),
    Check("mean_zscore", "mean", True, _NUMBERS, "mean against the trailing months (z-score)", _mean_zscore),
)}


def specs(table: Table) -> list[dict]:
    """The checks against history of one table: every_table and every_column defaults, the table's own entries
    replacing a default of the same check (and column); `severity: off` ones left out."""
    declared = suites_file()
    chosen: dict[tuple[str, str | None], dict] = {}
    for spec in declared.get("every_table", []):
        chosen[(spec["check"], None)] = spec
    for spec in declared.get("every_column", []):
        for column in table.columns:
            if column.name != KEY and column.pg_type in CHECKS[spec["check"]].types:
                chosen[(spec["check"], column.name)] = {**spec, "kwargs": {**spec.get("kwargs", {}),
                                                                          "column": column.name}}
    for spec in declared.get(table.name, []):
        if "check" in spec:
            chosen[(spec["check"], spec.get("kwargs", {}).get("column"))] = spec
    return [spec for spec in chosen.values() if spec.get("severity", "fail") != "off"]


def check_id(table_name: str, spec: dict) -> str:
    column = spec.get("kwargs", {}).get("column")
    return f"{table_name}.{spec['check']}" + (f".{column}" if column else "")


def known_check_ids() -> set[str]:
    """Every check id the `accept` param may name."""
    return {check_id(t.name, spec) for t in TABLES for spec in specs(t)}


def evaluate(table: Table, this: TableMetrics, earlier: list[TableMetrics],
             accept: tuple[str, ...] = ()) -> list[Outcome]:
    """Judge one table's month against the months published before it (`earlier`, oldest first).

    With no earlier month (the first one) every check is skipped, and says so.
    """
    return [_judge(table, spec, this, earlier, accept) for spec in specs(table)]


def _judge(table: Table, spec: dict, this: TableMetrics, earlier: list[TableMetrics], accept: tuple[str, ...]
           ) -> Outcome:
    check = CHECKS[spec["check"]]
    kwargs = dict(spec.get("kwargs", {}))
    column = kwargs.pop("column", None)
    ident = check_id(table.name, spec)
    value = this.value(check.metric, column)
    series = [(m.as_of, m.value(check.metric, column)) for m in earlier]
    known = [(as_of, v) for as_of, v in series if v is not None and not _nan(v)]
    previous = earlier[-1] if earlier else None
    skipped = None
    if previous is None:
        skipped = f"no month published before as_of {this.as_of} with recorded figures: nothing to compare with"
    elif value is None:
        skipped = (f"the previous month's user_ids are not kept (as_of {previous.as_of})" if not check.per_column
                   else f"no {check.metric} this month (every value NULL)")
    elif _nan(value):  # a NaN cell (the row rules' bounds refuse it): no figure to judge
        skipped = f"{check.metric} is not a number this month (a NaN in the column)"
    elif check.needs_previous_figure and (not known or known[-1][0] != previous.as_of):
        skipped = f"no {check.metric} in the previous month (as_of {previous.as_of})"
    verdict = Verdict(True, "", skipped)
    if skipped is None:
        verdict = check.judge(kwargs, value, [v for _, v in known], this)
    severity = spec.get("severity", "fail")
    accepted = not verdict.success and severity == "fail" and ident in accept
    figures = {
        "check_id": ident, "check": check.name, "metric": check.metric, "this": None if _nan(value) else value,
        "previous": known[-1][1] if known else None, "previous_as_of": known[-1][0] if known else None,
        "bound": verdict.bound, "history": [{"as_of": as_of, "value": v} for as_of, v in known],
        "skipped": verdict.skipped, "accepted": accepted, "as_of": this.as_of,
    }
    return Outcome(
        table=table.name, expectation=check.description, column=column, kwargs=kwargs,
        success=verdict.success, why=spec.get("why", ""), expectation_type=check.name,
        severity="warn" if accepted else severity, figures=figures)


def _nan(value: Any) -> bool:
    """NaN or an infinity: no JSON for it (figures are stored as jsonb), no order to judge by."""
    return isinstance(value, float) and not math.isfinite(value)


def unknown_accepts(accept: list[str] | tuple[str, ...]) -> list[str]:
    """The ids in `accept` that name no check (malformed or unknown), in order."""
    known = known_check_ids()
    return [item for item in accept if not re.fullmatch(CHECK_ID_PATTERN, item) or item not in known]
