"""What happens when a month is late: the Deadline Alert's callback (it runs in the triggerer).

It logs the alert and, when `STREAMFLOW_ALERT_WEBHOOK_URL` is set, POSTs it there as JSON:

    {"alert": "month_late", "dag_id": "ingest_month", "run_id": "scheduled__2024-03-01T00:00:00+00:00",
     "month": "month_001", "as_of": "2024-02-29", "state": "running", "deadline": "2024-03-11T00:00:00+00:00",
     "message": "..."}

A webhook is what every chat, paging and incident tool takes; the compose stack and the tests
point it at a receiver of their own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from streamflow import months, settings

log = logging.getLogger(__name__)


def late_month_alert(context: dict[str, Any]) -> dict[str, Any]:
    """The alert for a run whose deadline passed, from the context Airflow gives the callback."""
    from datetime import datetime

    run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    interval_end = run.get("data_interval_end")
    month = as_of = None
    if interval_end:
        try:
            found = months.month_from_interval_end(datetime.fromisoformat(str(interval_end)))
            month, as_of = found.month, found.as_of.isoformat()
        except ValueError:
            pass
    deadline_time = str(deadline.get("deadline_time"))
    days = settings.publish_deadline_days()
    message = (f"{run.get('dag_id')}: {month or 'the month'} (as_of {as_of}) is not published {days:g} day(s) after "
               f"its month ended (deadline {deadline_time}); run {run.get('dag_run_id')} is {run.get('state')}")
    return {"alert": "month_late", "dag_id": run.get("dag_id"), "run_id": run.get("dag_run_id"), "month": month,
            "as_of": as_of, "state": run.get("state"), "deadline": deadline_time, "message": message}


async def month_late(context: dict[str, Any] | None = None, **_: Any) -> str:
    """Deadline Alert callback of `ingest_month`: log the late month, POST it to the webhook if one is set.

    Returns:
        The alert as JSON text: Airflow stores it as the callback's output (a text column: a dict
        returned here fails that write and takes the triggerer down).

    Raises:
        httpx.HTTPError: the webhook did not take it (Airflow records the callback as failed).
    """
    alert = late_month_alert(context or {})
    log.warning("LATE MONTH: %s", alert["message"])
    url = settings.alert_webhook_url()
    if url:
        import httpx

        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            response = await client.post(url, json=alert)
            response.raise_for_status()
        log.info("late-month alert sent to %s (%s)", url, response.status_code)
    return json.dumps(alert)
