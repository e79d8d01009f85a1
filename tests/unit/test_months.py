"""Month folder and as_of resolution: the one function every run goes through."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streamflow.months import (
    month_for_index,
    month_for_year_month,
    month_from_interval_end,
    month_from_name,
    resolve_month,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval_end", "month", "as_of"),
    [
        (utc(2024, 2, 1), "month_000", date(2024, 1, 31)),   # the January 2024 run
        (utc(2024, 3, 1), "month_001", date(2024, 2, 29)),   # February of a leap year
        (utc(2025, 1, 1), "month_011", date(2024, 12, 31)),  # December → next January
        (utc(2025, 2, 1), "month_012", date(2025, 1, 31)),   # across the year boundary
        (utc(2025, 3, 1), "month_013", date(2025, 2, 28)),   # February of a common year
        (utc(2028, 3, 1), "month_049", date(2028, 2, 29)),
    ],
)
def test_scheduled_runs(interval_end, month, as_of):
    run = month_from_interval_end(interval_end)
    assert (run.month, run.as_of) == (month, as_of)
    assert run.period_start == as_of.replace(day=1)


def test_param_overrides_the_interval():
    run = resolve_month("month_001", utc(2026, 11, 1))
    assert (run.month, run.as_of) == ("month_001", date(2024, 2, 29))


def test_as_of_follows_from_the_month_name():
    assert month_from_name("month_013").as_of == date(2025, 2, 28)
    assert month_for_index(0).as_of == date(2024, 1, 31)


@pytest.mark.parametrize("bad", ["../x", "month_1", "month_0000", "month_00a", "", "month_000/../../etc",
                                 "month_\u0661\u0662\u0663", "month_000\n"])  # Arabic-Indic digits; a newline
def test_bad_month_names_are_refused(bad):
    with pytest.raises(ValueError, match="does not match"):
        month_from_name(bad)


def test_manual_run_without_interval_or_param_is_refused():
    with pytest.raises(ValueError, match="trigger it with the month param"):
        resolve_month(None, None)


def test_interval_before_the_first_month_is_refused():
    # `airflow dags test ingest_month 2024-01-01` covers December 2023.
    with pytest.raises(ValueError, match="before the first month"):
        month_from_interval_end(utc(2024, 1, 1))


def test_interval_not_on_a_month_boundary_is_refused():
    with pytest.raises(ValueError, match="month boundary"):
        month_from_interval_end(utc(2024, 2, 15))


@pytest.mark.parametrize(("last_month", "run_month", "interval_end"), [
    ("2024-01", "month_000", utc(2024, 2, 1)), ("2024-02", "month_001", utc(2024, 3, 1)),
    ("2024-12", "month_011", utc(2025, 1, 1))])
def test_last_scheduled_month(monkeypatch, last_month, run_month, interval_end):
    """STREAMFLOW_LAST_MONTH (YYYY-MM): the run it names and where the schedule's last interval ends."""
    from streamflow import settings

    assert month_for_year_month(last_month).month == run_month
    monkeypatch.setenv("STREAMFLOW_LAST_MONTH", last_month)
    assert settings.schedule_last_interval_end() == interval_end


@pytest.mark.parametrize("bad", ["2024-13", "2024", "Feb 2024", "2023-12"])
def test_bad_last_month_is_refused(bad):
    with pytest.raises(ValueError, match="YYYY-MM|outside"):
        month_for_year_month(bad)


def test_make_run_ends_an_open_ended_schedule_at_the_last_month_present(tmp_path):
    from streamflow_dev.__main__ import last_month_present

    assert last_month_present({"STREAMFLOW_SEEDS_DIR": "data/seeds"}) == "2024-02"  # the shipped months
    for name in ("month_000", "month_013", "notes"):
        (tmp_path / name).mkdir()
    assert last_month_present({"STREAMFLOW_SEEDS_DIR": str(tmp_path)}) == "2025-02"
    with pytest.raises(SystemExit, match="no month folder"):
        last_month_present({"STREAMFLOW_SEEDS_DIR": str(tmp_path / "empty")})
