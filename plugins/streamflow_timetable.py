"""`MonthlyThrough`: a monthly data-interval schedule that stops after a given month.

Why not the DAG's `end_date`? Airflow copies `end_date` onto every task, and a run whose
logical date is later gets no task instances at all: a UI trigger (logical date = now) or
`airflow dags test` of any month would "succeed" having done nothing. This timetable bounds
only what the scheduler creates (catch-up stops at the last month present), and leaves manual
runs, which pick their month with the `month` param, alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.interval import CronDataIntervalTimetable

if TYPE_CHECKING:
    from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
    from pendulum import DateTime


class MonthlyThrough(CronDataIntervalTimetable):
    """`@monthly` data intervals (UTC) whose last one ends at `last_interval_end` (None: no end)."""

    def __init__(self, last_interval_end: DateTime | None):
        super().__init__("@monthly", "UTC")
        self.last_interval_end = last_interval_end

    @property
    def summary(self) -> str:
        return "@monthly" if self.last_interval_end is None else f"@monthly until {self.last_interval_end:%Y-%m-%d}"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        info = super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction)
        if info is not None and self.last_interval_end is not None and info.data_interval.end > self.last_interval_end:
            return None
        return info

    def serialize(self) -> dict[str, Any]:
        end = self.last_interval_end.isoformat() if self.last_interval_end else None
        return {"last_interval_end": end}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MonthlyThrough:
        import pendulum

        end = data.get("last_interval_end")
        return cls(pendulum.parse(end) if end else None)


class StreamflowTimetablePlugin(AirflowPlugin):
    """Registers `MonthlyThrough` so the scheduler can deserialize it."""

    name = "streamflow_timetable"
    timetables = [MonthlyThrough]
