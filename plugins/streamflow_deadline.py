"""`MonthPublishDeadline`: the deadline reference of a month's Deadline Alert (registered here).

A month is late when it is not published N days (`STREAMFLOW_PUBLISH_DEADLINE_DAYS`) after its
data interval ends. None of Airflow's built-in references is that point: the logical date is the
interval's *start* (a month is 28 to 31 days before its end), the queued time is when the run
starts, which for a run waiting on its files is the wrong clock.

Defaults, and why:

* The reference is the later of `data_interval_end` and the moment the run is created: a run that
  catch-up or a backfill creates long after its month (a warehouse rebuilt, the first deployment)
  gets its N days from then, instead of an alert for every old month the moment it is created.
* Manual runs get no deadline (None): someone who triggers a month is watching it.
* A run that publishes before its deadline has it removed by Airflow (a successful run prunes
  its deadlines); a failed or still waiting one keeps it, and the callback fires when it passes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseDeadlineReference

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class MonthPublishDeadline(BaseDeadlineReference):
    """max(data_interval_end, now) when a scheduled or backfill run is created; None for a manual one."""

    required_kwargs = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session: Session, dag_id: str, run_id: str, **kwargs: Any) -> datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        found = session.execute(select(DagRun.data_interval_end, DagRun.run_type)
                                .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if found is None or found.data_interval_end is None or str(found.run_type) == "manual":
            return None
        return max(found.data_interval_end, datetime.now(UTC))


class StreamflowDeadlinePlugin(AirflowPlugin):
    """Registers `MonthPublishDeadline` so the scheduler can evaluate it."""

    name = "streamflow_deadline"
    deadline_references = [MonthPublishDeadline]
