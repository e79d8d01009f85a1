"""The Validation tab's page from rows shaped like `validation_view.fetch()`'s: the row rules and the
checks against history (severity fail/warn, figures), the trend chart, the per-table verdict."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest

from streamflow import validation_view

RUN_ID = "manual__2024-03-01T00:00:00+00:00"
AS_OF = "2024-02-29"


def gx_row(table: str, column: str, success: bool = True, **changes) -> dict:
    """A Great Expectations row rule as fetch() returns it."""
    row = {"table_name": table, "month": "month_001", "as_of": AS_OF,
           "expectation": "expect_column_values_to_not_be_null", "expectation_type": "expect_column_values_to_not_be_null",
           "column_name": column, "kwargs": {"column": column}, "success": success, "element_count": None,
           "unexpected_count": None, "unexpected_percent": None, "samples": [], "why": "the key of every table",
           "error": None, "validated_at": datetime(2024, 3, 1, 0, 5, tzinfo=UTC), "failing_keys_kept": 0,
           "severity": "fail", "figures": None}
    assert set(row) == set(validation_view.COLUMNS)
    row.update(changes)
    return row


def check_row(table: str, check: str, *, metric: str, this, history: list[tuple[str, object]], success: bool,
              severity: str = "fail", column: str | None = None, bound: str = "", skipped: str | None = None,
              accepted: bool = False, kwargs: dict | None = None) -> dict:
    """A check against history as fetch() returns it (figures as psycopg reads jsonb)."""
    previous = history[-1] if history else (None, None)
    figures = {"check_id": f"{table}.{check}", "check": check, "metric": metric, "this": this,
               "previous": previous[1], "previous_as_of": previous[0], "bound": bound,
               "history": [{"as_of": as_of, "value": value} for as_of, value in history], "skipped": skipped,
               "accepted": accepted}
    return gx_row(table, column, success, expectation=f"{metric} against the previous months", expectation_type=check,
                  column_name=column, kwargs=kwargs or {}, why="a month's extract is about the same size",
                  severity=severity, figures=figures)


ROWS_HISTORY = [("2023-11-30", 6950), ("2023-12-31", 7000), ("2024-01-31", 7043)]


def failing_rows_change(**changes) -> dict:
    arguments = {"metric": "rows", "this": 3000, "history": ROWS_HISTORY, "success": False,
                 "bound": "0.9x..1.25x of the previous month's rows (6338.7..8803.75)",
                 "kwargs": {"min_ratio": 0.9, "max_ratio": 1.25}} | changes
    return check_row("users", "rows_change", **arguments)


def warning_mean_zscore(**changes) -> dict:
    arguments = {"metric": "mean", "column": "watch_hours_30d", "this": 21.93417,
                 "history": [("2023-11-30", 17.2), ("2023-12-31", 17.45), ("2024-01-31", 17.31)], "success": False,
                 "severity": "warn", "bound": "within 3 standard deviations of the previous months' means",
                 "kwargs": {"max_z": 3}} | changes
    return check_row("usage_agg_30d", "mean_zscore", **arguments)


def skipped_users_left() -> dict:
    return check_row("users", "users_left", metric="users_left", this=12, history=[], success=True,
                     skipped="no previous published month to compare with")


def sample_rows() -> list[dict]:
    """A realistic run: users blocks (rows_change), usage_agg_30d warns (mean_zscore), labels passes."""
    return [
        gx_row("users", "user_id"), gx_row("users", "signup_date"), failing_rows_change(), skipped_users_left(),
        gx_row("usage_agg_30d", "user_id"),
        gx_row("usage_agg_30d", "watch_hours_30d", expectation="expect_column_values_to_be_between",
               expectation_type="expect_column_values_to_be_between",
               kwargs={"column": "watch_hours_30d", "min_value": 0, "max_value": 720}, why="course rule (>= 0)"),
        warning_mean_zscore(),
        gx_row("labels", "user_id"), gx_row("labels", "churn_label"),
    ]


def page_of(rows: list[dict], task_id: str | None = None) -> str:
    return validation_view.render(rows, "ingest_month", RUN_ID, task_id)


def row_html(page: str, marker: str) -> str:
    """The one `<tr>` of the page holding `marker`."""
    [row] = [r for r in re.findall(r"<tr class='[^']*'>.*?</tr>", page) if marker in r]
    return row


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", page)


def polyline_points(svg: str) -> list[tuple[float, float]]:
    [points] = re.findall(r"<polyline points='([^']*)'", svg)
    return [tuple(map(float, pair.split(","))) for pair in points.split()]


def test_a_failing_check_shows_this_month_the_previous_month_the_bound_and_a_trend():
    page = page_of([gx_row("users", "user_id"), failing_rows_change()], "validate.users")

    row = row_html(page, "rows_change")
    assert row.startswith("<tr class='fail'><td>FAIL</td>")
    assert "rows this month: <strong>3000</strong>" in row
    assert "previous (2024-01-31): 7043" in row
    assert html.escape("0.9x..1.25x of the previous month's rows (6338.7..8803.75)") in row
    assert "max_ratio=1.25, min_ratio=0.9" in row
    assert "check <code>users.rows_change</code>" in row
    [svg] = svgs(row)
    assert "<title>rows by as_of: 2023-11-30 6950, 2023-12-31 7000, 2024-01-31 7043, 2024-02-29 3000</title>" in svg
    points = polyline_points(svg)
    assert len(points) == 4
    # This month's point, the last, in the failure's colour, at the bottom (the lowest value).
    [this] = re.findall(r"<circle class='this' cx='([\d.]+)' cy='([\d.]+)' r='3.5' fill='#b00020'/>", svg)
    assert tuple(map(float, this)) == points[-1]
    assert points[-1][1] == max(y for _, y in points)
    for label in (">2023-11-30</text>", f">{AS_OF}</text>", ">7043</text>", ">3000</text>"):
        assert label in svg
    assert page.count("<tr class='fail'>") == 1


def test_a_warning_is_labelled_warn_and_is_not_counted_as_failed():
    page = page_of([gx_row("usage_agg_30d", "user_id"), warning_mean_zscore()])

    row = row_html(page, "mean_zscore")
    assert row.startswith("<tr class='warn'><td>WARN</td>")
    assert "accepted" not in row
    assert "<strong>21.93</strong>" in row  # a mean to 4 significant digits
    assert "previous (2024-01-31): 17.31" in row
    [svg] = svgs(row)
    assert "<circle class='this' cx='190.0' cy='8.0' r='3.5' fill='#b35900'/>" in svg  # the highest, last
    assert "fill='#b00020'" not in svg
    verdict = "1/2 expectations passed, <span class='warn'>1 warning</span>"
    assert f"<h2 id='usage_agg_30d' class='passed'>usage_agg_30d: {verdict}</h2>" in page
    assert f"<li class='warn'><a href='#usage_agg_30d'>usage_agg_30d</a>: {verdict}</li>" in page
    body = page[page.index("<body>"):]
    assert "failed" not in re.sub(r"class='[^']*'", "", body)
    assert "1 warning: recorded and shown, not blocking the publish." in page
    assert "<tr class='fail'>" not in page


def test_a_skipped_check_says_skipped_with_its_reason_and_has_no_chart():
    page = page_of([gx_row("users", "user_id"), skipped_users_left()], "validate.users")

    row = row_html(page, "users_left")
    assert row.startswith("<tr class='skipped'><td>skipped</td>")
    assert "skipped: no previous published month to compare with" in row
    assert "<td>pass</td>" not in row
    assert "<svg" not in page
    assert "users: 1/2 expectations passed, 1 skipped</h2>" in page


def test_an_accepted_failure_says_it_was_accepted_and_does_not_block():
    page = page_of([failing_rows_change(severity="warn", accepted=True)], "validate.users")

    row = row_html(page, "rows_change")
    assert row.startswith("<tr class='warn'><td>WARN<br><small>accepted by the run's <code>accept</code> param"
                          "</small></td>")
    assert "<h2 id='users' class='passed'>users: 0/1 expectations passed, " \
           "<span class='warn'>1 warning (1 accepted)</span></h2>" in page
    assert len(svgs(row)) == 1


def test_a_passing_check_shows_its_figures_without_a_chart():
    row = row_html(page_of([failing_rows_change(this=7100, success=True)]), "rows_change")

    assert row.startswith("<tr class='pass'><td>pass</td>")
    assert "<strong>7100</strong>" in row
    assert "<svg" not in row


@pytest.mark.parametrize("where", ["bound", "history as_of", "metric", "this"])
def test_markup_from_a_file_is_escaped_in_the_figures_and_the_chart(where):
    hostile = "<img src=x onerror=alert(1)>"
    row = failing_rows_change()
    figures = row["figures"]
    if where == "bound":
        figures["bound"] = hostile
    elif where == "history as_of":
        figures["history"][0]["as_of"] = hostile
    elif where == "metric":
        figures["metric"] = hostile
    else:
        figures["this"] = hostile  # not a number: shown as text, left out of the chart
    page = page_of([row], "validate.users")

    assert "<img" not in page
    assert html.escape(hostile, quote=True) in page
    assert len(svgs(page)) == 1


def test_equal_values_draw_a_flat_line():
    row = failing_rows_change(this=7000, history=[("2023-12-31", 7000), ("2024-01-31", 7000)])
    [svg] = svgs(page_of([row]))

    points = polyline_points(svg)
    assert len(points) == 3
    assert len({y for _, y in points}) == 1
    assert svg.count(">7000</text>") == 1  # the min is the max: one label


def test_one_previous_point_draws_two_points():
    [svg] = svgs(page_of([failing_rows_change(history=[("2024-01-31", 7043)])]))

    points = polyline_points(svg)
    assert len(points) == 2
    assert points[0][0] < points[1][0]
    assert "<title>rows by as_of: 2024-01-31 7043, 2024-02-29 3000</title>" in svg


def test_null_values_are_left_out_of_the_chart():
    history = [("2023-11-30", None), ("2023-12-31", 0.8312345), ("2024-01-31", 0.81)]
    row = failing_rows_change(metric="null_fraction", this=0.05, history=history)
    [svg] = svgs(page_of([row]))

    assert len(polyline_points(svg)) == 3
    assert "2023-11-30" not in svg
    assert "<title>null_fraction by as_of: 2023-12-31 0.8312, 2024-01-31 0.81, 2024-02-29 0.05</title>" in svg


def test_no_previous_value_or_no_value_this_month():
    nothing_before = failing_rows_change(history=[("2024-01-31", None)])
    assert "<svg" not in page_of([nothing_before])
    [svg] = svgs(page_of([failing_rows_change(this=None)]))  # the previous months, no highlighted point
    assert len(polyline_points(svg)) == 3
    assert "class='this'" not in svg
    assert "rows this month: <strong>no value</strong>" in page_of([failing_rows_change(this=None)])


@pytest.mark.parametrize(("value", "shown"), [(7043, "7043"), (7043.0, "7043"), (12.0, "12"), (1e15, "1000000000000000"), (0.83, "0.83"), (0.8312345, "0.8312"),
                                              (17.2, "17.2"), (6338.7, "6339"), (9999.6, "10000"), (None, "no value")])
def test_numbers_read_sensibly(value, shown):
    row = failing_rows_change(this=value)
    assert f"<strong>{shown}</strong>" in page_of([row])


def test_the_run_view_has_a_verdict_line_per_table_blocking_tables_first():
    page = page_of(sample_rows())

    summary = re.search(r"<ul class='summary'>(.*?)</ul>", page).group(1)
    assert re.findall(r"<li class='(\w+)'><a href='#(\w+)'>", summary) == [
        ("fail", "users"), ("warn", "usage_agg_30d"), ("pass", "labels")]
    assert ("<a href='#users'>users</a>: 2/4 expectations passed, 1 failed (blocks the publish), 1 skipped"
            in summary)
    assert "<a href='#labels'>labels</a>: 2/2 expectations passed</li>" in summary
    assert re.findall(r"<h2 id='(\w+)' class='(\w+)'>", page) == [
        ("users", "failed"), ("usage_agg_30d", "passed"), ("labels", "passed")]
    assert "users: 2/4 expectations passed, 1 failed, 1 skipped</h2>" in page
    assert "1 failure blocks the publish: the live tables keep the previous month." in page
    # In a table, the failure first, then the rest in the order recorded.
    users = page[page.index("<h2 id='users'"):page.index("<h2 id='usage_agg_30d'")]
    assert re.findall(r"<tr class='(\w+)'>", users) == ["fail", "pass", "pass", "skipped"]
    assert len(svgs(page)) == 2


def test_a_run_of_one_table_still_has_its_verdict_line():
    page = page_of([gx_row("labels", "user_id"), gx_row("labels", "churn_label", success=False)])

    assert ("<ul class='summary'><li class='fail'><a href='#labels'>labels</a>: 1/2 expectations passed,"
            " 1 failed (blocks the publish)</li></ul>") in page
    assert "<h2 id='labels' class='failed'>labels: 1/2 expectations passed, 1 failed</h2>" in page


def test_the_task_view_keeps_the_row_rules_wording():
    """What the stack tests read: the heading's exact text, one `tr.fail`, the counts and samples."""
    rows = [gx_row("usage_agg_30d", f"c{i}") for i in range(9)] + [gx_row(
        "usage_agg_30d", "watch_hours_30d", success=False, unexpected_count=3, element_count=7043,
        unexpected_percent=0.0426, samples=[{"user_id": "6388-TABGU", "value": -24.1}], failing_keys_kept=3)]
    page = page_of(rows, "validate.usage_agg_30d")

    assert "<h2 id='usage_agg_30d' class='failed'>usage_agg_30d: 9/10 expectations passed, 1 failed</h2>" in page
    assert "<ul class='summary'>" not in page
    row = row_html(page, "watch_hours_30d")
    assert "<td>3 of 7043 rows (0.04%)<br><small>3 failing user_id(s) kept in <code>validation_failing_keys</code>" in row
    assert "<td>6388-TABGU=-24.1</td>" in row
    assert page.count("<tr class='pass'>") == 9
