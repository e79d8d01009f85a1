"""Which month folder a run loads, and the `as_of` date its snapshots carry.

`month_000` is January 2024; `month_NNN` is NNN months later. A scheduled run covers one
calendar month (its data interval) and stamps `as_of` = the last day of that month, i.e. the
day before `data_interval_end`. A `month` param, when given, wins over the interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

FIRST_MONTH = date(2024, 1, 1)  # the month month_000 covers
MONTH_NAME_PATTERN = r"^month_[0-9]{3}$"  # not \d: in Python it matches any Unicode digit
_MONTH_NAME = re.compile(MONTH_NAME_PATTERN)


@dataclass(frozen=True)
class MonthRun:
    """The month a run loads: folder name, index from FIRST_MONTH, first and last day."""

    month: str
    index: int
    period_start: date
    as_of: date

    def as_dict(self) -> dict[str, str | int]:
        return {
            "month": self.month,
            "index": self.index,
            "period_start": self.period_start.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


def _index(day: date) -> int:
    """Months from FIRST_MONTH to the month of `day` (negative before it)."""
    return (day.year - FIRST_MONTH.year) * 12 + day.month - FIRST_MONTH.month


def _add_months(day: date, months: int) -> date:
    total = day.year * 12 + (day.month - 1) + months
    return date(total // 12, total % 12 + 1, 1)


def month_for_index(index: int) -> MonthRun:
    """The run for `month_{index:03d}`.

    Args:
        index: months since FIRST_MONTH, 0..999.
    """
    if not 0 <= index <= 999:
        raise ValueError(f"month index {index} is outside month_000..month_999")
    period_start = _add_months(FIRST_MONTH, index)
    as_of = _add_months(period_start, 1) - timedelta(days=1)
    return MonthRun(f"month_{index:03d}", index, period_start, as_of)


def month_from_name(name: str) -> MonthRun:
    """Parse a `month_NNN` folder name (the DAG's `month` param)."""
    if not isinstance(name, str) or not _MONTH_NAME.fullmatch(name):
        raise ValueError(f"month {name!r} does not match {MONTH_NAME_PATTERN}")
    return month_for_index(int(name.removeprefix("month_")))


def month_from_interval_end(data_interval_end: datetime | date) -> MonthRun:
    """The month whose last day is the day before `data_interval_end`.

    Args:
        data_interval_end: end (exclusive) of a monthly data interval, e.g. 2024-02-01T00:00Z
            for the January 2024 run.
    """
    end_day = data_interval_end.date() if isinstance(data_interval_end, datetime) else data_interval_end
    as_of = end_day - timedelta(days=1)
    index = _index(as_of)
    if index < 0:
        raise ValueError(
            f"data interval ending {end_day.isoformat()} covers {as_of:%Y-%m}, "
            f"before the first month {FIRST_MONTH:%Y-%m} (month_000)"
        )
    run = month_for_index(index)
    if run.as_of != as_of:
        raise ValueError(
            f"data interval ending {end_day.isoformat()} does not end on a month boundary; "
            "pass the month param (month_NNN) instead"
        )
    return run


def month_for_year_month(text: str) -> MonthRun:
    """The run covering a `YYYY-MM` month (how STREAMFLOW_LAST_MONTH is written)."""
    try:
        first_day = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{text!r} is not a YYYY-MM month") from None
    return month_for_index(_index(first_day))


def resolve_month(month_param: str | None, data_interval_end: datetime | date | None) -> MonthRun:
    """The month a run loads: the `month` param if set, else the one its data interval covers."""
    if month_param:
        return month_from_name(month_param)
    if data_interval_end is None:
        raise ValueError("this run has no data interval: trigger it with the month param (month_NNN)")
    return month_from_interval_end(data_interval_end)


def available(seeds_dir: Path) -> list[str]:
    """The `month_NNN` folders under `seeds_dir`, in order (none if it does not exist).

    Read when the DAG is parsed, to offer them in the trigger form: one directory listing.
    """
    if not seeds_dir.is_dir():
        return []
    return sorted(entry.name for entry in seeds_dir.iterdir() if _MONTH_NAME.fullmatch(entry.name) and entry.is_dir())
