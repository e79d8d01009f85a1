"""The checks against history as pure functions: a month's figures against earlier months' (no database)."""

from __future__ import annotations

import pytest

from streamflow import history, validation
from streamflow.metrics import ColumnMetrics, TableMetrics
from streamflow.registry import TABLES_BY_NAME

LABELS, USAGE = TABLES_BY_NAME["labels"], TABLES_BY_NAME["usage_agg_30d"]


def usage_month(as_of: str, rows: int = 7043, watch_mean: float = 17.2, watch_sd: float = 7.0,
                watch_distinct: int = 6000, watch_nulls: float = 0.0, left: int | None = 0) -> TableMetrics:
    columns = {name: ColumnMetrics(null_fraction=0.0, distinct_count=10, min_value="0", max_value="9", mean=3.0,
                                   stddev=1.0)
               for name in ("avg_session_mins_7d", "unique_devices_30d", "skips_7d", "rebuffer_events_7d")}
    columns["watch_hours_30d"] = ColumnMetrics(null_fraction=watch_nulls, distinct_count=watch_distinct,
                                               min_value="5.7", max_value="51.7", mean=watch_mean, stddev=watch_sd)
    return TableMetrics(table="usage_agg_30d", as_of=as_of, rows=rows, columns=columns, users_joined=None if left is None else 0,
                        users_left=left, users_kept=None if left is None else rows,
                        previous_as_of=None if left is None else "2024-01-31")


def outcome(outcomes: list[validation.Outcome], check: str, column: str | None = None) -> validation.Outcome:
    found = [o for o in outcomes if o.expectation_type == check and o.column == column]
    assert len(found) == 1, [(o.expectation_type, o.column) for o in outcomes]
    return found[0]


def test_the_first_month_skips_every_check_and_says_why():
    outcomes = history.evaluate(USAGE, usage_month("2024-01-31", left=None), [])
    assert outcomes
    assert all(o.success for o in outcomes)
    assert {o.figures["skipped"] for o in outcomes} == {
        "no month published before as_of 2024-01-31 with recorded figures: nothing to compare with"}


def test_a_normal_month_passes_and_a_cut_short_one_fails_rows_with_its_figures():
    january = usage_month("2024-01-31", left=None)
    assert all(o.success for o in history.evaluate(USAGE, usage_month("2024-02-29"), [january]))
    cut = history.evaluate(USAGE, usage_month("2024-02-29", rows=3000, left=4043), [january])
    rows = outcome(cut, "rows_change")
    assert not rows.success
    assert (rows.figures["this"], rows.figures["previous"], rows.figures["previous_as_of"]) == (3000, 7043,
                                                                                                "2024-01-31")
    assert rows.figures["bound"] == "0.9x..1.25x of the previous month (6339..8804)"
    left = outcome(cut, "users_left")
    assert not left.success
    assert left.figures["bound"] == "at most 5% of the previous month's 7043 users (352.2)"


@pytest.mark.parametrize(("change", "check", "passes"), [
    ({"watch_distinct": 1, "watch_sd": 0.0}, "single_value", False),
    ({"watch_distinct": 5900}, "single_value", True),
    ({"watch_nulls": 0.11}, "null_fraction_jump", False),
    ({"watch_nulls": 0.09}, "null_fraction_jump", True),
    ({"watch_mean": 17.2 * 1.26}, "mean_change", False),
    ({"watch_mean": 17.2 * 1.24}, "mean_change", True),
    ({"watch_sd": 14.1}, "stddev_change", False),
    ({"watch_sd": 13.9}, "stddev_change", True),
    ({"watch_sd": 3.4}, "stddev_change", False),
])
def test_each_column_check_fails_just_past_its_bound(change, check, passes):
    result = outcome(history.evaluate(USAGE, usage_month("2024-02-29", **change), [usage_month("2024-01-31")]),
                     check, "watch_hours_30d")
    assert result.success is passes
    assert result.figures["skipped"] is None


def test_a_column_that_had_one_value_already_is_not_called_collapsed():
    january = usage_month("2024-01-31", watch_distinct=1, watch_sd=0.0)
    result = outcome(history.evaluate(USAGE, usage_month("2024-02-29", watch_distinct=1, watch_sd=0.0), [january]),
                     "single_value", "watch_hours_30d")
    assert result.success
    assert result.figures["skipped"] == "the previous month had 1 value(s) already"


def test_the_zscore_waits_for_three_months_then_warns_on_a_drift():
    months = [usage_month(f"2024-0{m}-28", watch_mean=17.0 + 0.1 * m) for m in range(1, 5)]
    two = outcome(history.evaluate(USAGE, usage_month("2024-03-31", watch_mean=17.3), months[:2]), "mean_zscore",
                  "watch_hours_30d")
    assert two.success
    assert two.figures["skipped"] == "needs 3 published months before this one, has 2"
    drift = outcome(history.evaluate(USAGE, usage_month("2024-05-31", watch_mean=19.0), months), "mean_zscore",
                    "watch_hours_30d")
    # 19.0 is within 25 % of 17.4 (mean_change passes) but far from the trailing months.
    assert not drift.success
    assert drift.severity == "warn"
    assert not validation.blocks_publish(drift)
    assert [h["value"] for h in drift.figures["history"]] == [17.1, 17.2, 17.3, 17.4]


def test_the_churn_rate_check_is_absolute_and_an_accepted_failure_is_a_warning():
    def labels(as_of: str, churn: float) -> TableMetrics:
        return TableMetrics(table="labels", as_of=as_of, rows=7043, users_left=0, users_kept=7043, users_joined=0,
                            columns={"churn_label": ColumnMetrics(0.0, 2, "false", "true", churn, 0.44)})

    january = labels("2024-01-31", 0.2654)
    assert outcome(history.evaluate(LABELS, labels("2024-02-29", 0.2415), [january]), "mean_change",
                   "churn_label").success
    shifted = outcome(history.evaluate(LABELS, labels("2024-02-29", 0.33), [january]), "mean_change", "churn_label")
    assert not shifted.success
    assert validation.blocks_publish(shifted)
    assert shifted.figures["bound"] == "within ±0.05 of the previous month (0.2154..0.3154)"
    accepted = outcome(history.evaluate(LABELS, labels("2024-02-29", 0.33), [january],
                                        accept=("labels.mean_change.churn_label",)), "mean_change", "churn_label")
    assert (accepted.success, accepted.severity, accepted.figures["accepted"]) == (False, "warn", True)
    assert "accepted for this run (accept: labels.mean_change.churn_label)" in validation.describe_failure(accepted)


def test_a_table_entry_replaces_the_default_for_its_column_and_severity_off_silences(monkeypatch):
    declared = {
        "every_table": [{"check": "rows_change", "kwargs": {"min_ratio": 0.9, "max_ratio": 1.25}}],
        "every_column": [{"check": "mean_change", "kwargs": {"max_relative_change": 0.25}}],
        "usage_agg_30d": [{"check": "mean_change", "kwargs": {"column": "skips_7d", "max_relative_change": 0.5}},
                          {"check": "rows_change", "severity": "off"}],
    }
    monkeypatch.setattr(history, "suites_file", lambda: declared)
    specs = {history.check_id("usage_agg_30d", s): s for s in history.specs(USAGE)}
    assert "usage_agg_30d.rows_change" not in specs
    assert specs["usage_agg_30d.mean_change.skips_7d"]["kwargs"]["max_relative_change"] == 0.5
    assert specs["usage_agg_30d.mean_change.watch_hours_30d"]["kwargs"]["max_relative_change"] == 0.25
    # every_column's mean checks fit numbers only: no mean_change on a text or boolean column.
    assert {c for c in specs if c.startswith("labels")} == set()
    assert history.specs(LABELS) == [declared["every_table"][0]]


def test_accept_ids_that_name_no_check_are_listed():
    assert history.unknown_accepts(["labels.mean_change.churn_label", "users.rows_change"]) == []
    assert history.unknown_accepts(["labels.mean_change", "users.rows_change; DROP TABLE users", "x.y.z"]) == [
        "labels.mean_change", "users.rows_change; DROP TABLE users", "x.y.z"]


def test_a_nan_figure_is_skipped_and_stored_as_null():
    nan = usage_month("2024-02-29", watch_mean=float("nan"))
    result = outcome(history.evaluate(USAGE, nan, [usage_month("2024-01-31")]), "mean_change", "watch_hours_30d")
    assert result.success
    assert result.figures["this"] is None
    assert result.figures["skipped"] == "mean is not a number this month (a NaN in the column)"


def test_the_log_verdict_counts_like_the_view_and_groups_the_skip_reasons():
    zscores = [usage_month(f"2024-0{m}-28") for m in (1, 2)]
    outcomes = history.evaluate(USAGE, usage_month("2024-03-31", watch_nulls=0.5), zscores)
    header = validation.summarise(outcomes).splitlines()[0]
    total = len(outcomes)
    assert header == (f"usage_agg_30d: {total - 6}/{total} expectations passed, 1 failed, 5 skipped "
                      "(5: needs 3 published months before this one, has 2)")
    assert validation.summarise(outcomes).splitlines()[1] == (
        "FAILED usage_agg_30d.watch_hours_30d: null fraction against the previous month {\"max_increase\": 0.1}")
