"""`MonthCompleteSensor`: a run waits, deferred in the triggerer, until its month folder is complete.

A month is complete when its six CSVs **and** its completeness marker (`_manifest.json`, written
after the files; `streamflow.completeness`) are there. Checking the files against the marker is
`resolve_month`'s job (it reads every byte, which the triggerer's event loop must not do).

Defaults, and why:

* **Scheduled runs wait**, a month's files arrive when they arrive. The wait is deferred
  (`MonthCompleteTrigger` in the triggerer): a waiting month holds no worker slot. It is bounded by
  `STREAMFLOW_MONTH_WAIT_DAYS` (default 7), counted from the wait's first start and kept in the
  trigger's arguments, so a restarted triggerer resumes the same wait, not a new one. Past it the
  task fails naming what is still missing (retries would only start the wait again, so none).
* **Manual runs do not wait**: someone who triggers `month_NNN` means a month that is there. No
  marker fails at once, naming the marker and the override (`require_marker: false`).
* The folder is polled every `STREAMFLOW_MONTH_POLL_S` seconds (default 300): a directory
  listing, no file read.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

#: Past the bounded wait, the trigger's own deadline fires first; this margin is Airflow's safety net.
_DEFER_TIMEOUT_MARGIN = timedelta(hours=1)


def _month_folder(params: dict, data_interval_end) -> Path:
    from streamflow import months, settings

    return settings.seeds_dir() / months.resolve_month(params.get("month"), data_interval_end).month


class MonthCompleteTrigger(BaseTrigger):
    """Polls a month folder until its files and marker are there, or `give_up_at` passes."""

    def __init__(self, folder: str, give_up_at: str, poll_seconds: float):
        super().__init__()
        self.folder, self.give_up_at, self.poll_seconds = folder, give_up_at, poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"folder": self.folder, "give_up_at": self.give_up_at, "poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pathlib import Path

        from streamflow.completeness import waiting_for

        folder, give_up_at = Path(self.folder), datetime.fromisoformat(self.give_up_at)
        reported = None
        while True:
            missing = await asyncio.to_thread(waiting_for, folder)
            if not missing:
                self.log.info("%s is complete (files and marker)", folder)
                yield TriggerEvent({"status": "complete", "folder": self.folder})
                return
            now = datetime.now(UTC)
            if now >= give_up_at:
                yield TriggerEvent({"status": "timed_out", "folder": self.folder, "missing": missing})
                return
            if missing != reported:
                self.log.info("waiting until %s for %s: missing %s", self.give_up_at, folder, ", ".join(missing))
                reported = missing
            await asyncio.sleep(min(self.poll_seconds, (give_up_at - now).total_seconds()))


class MonthCompleteSensor(BaseSensorOperator):
    """Succeeds once the run's month folder holds its six files and its completeness marker."""

    def __init__(self, **kwargs):
        # retries: a timed-out wait retried would only wait again; bad input is not retried either.
        super().__init__(retries=0, **kwargs)

    def poke(self, context) -> bool:
        from streamflow.completeness import waiting_for

        return not waiting_for(_month_folder(context["params"], context.get("data_interval_end")))

    def execute(self, context) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from streamflow import settings
        from streamflow.completeness import MARKER_NAME, waiting_for

        params = context["params"]
        try:
            folder = _month_folder(params, context.get("data_interval_end"))
        except ValueError as error:
            raise AirflowFailException(str(error)) from error
        missing = waiting_for(folder)
        if not missing:
            self.log.info("%s is complete (files and marker %s)", folder, MARKER_NAME)
            return
        if params.get("month"):  # a manual run of a named month: no wait
            if not params.get("require_marker", True):
                files = [path for path in missing if not path.endswith(MARKER_NAME)]
                if not files:
                    self.log.warning("%s has no marker: loading it anyway (require_marker: false)", folder)
                    return
                missing = files
            raise AirflowFailException(
                f"{folder.name} is not complete, missing: {', '.join(missing)}. The marker {MARKER_NAME} is "
                f"written after the six files (python -m streamflow.completeness {folder}); to load a month "
                'without one, trigger it with {"month": "' + folder.name + '", "require_marker": false}')
        wait = timedelta(days=settings.month_wait_days())
        give_up_at = datetime.now(UTC) + wait
        self.log.info("waiting (deferred) until %s for %s: missing %s", give_up_at.isoformat(), folder,
                      ", ".join(missing))
        self.defer(trigger=MonthCompleteTrigger(str(folder), give_up_at.isoformat(), settings.month_poll_seconds()),
                   method_name="execute_complete", timeout=wait + _DEFER_TIMEOUT_MARGIN)

    def execute_complete(self, context, event: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from streamflow import settings

        if event["status"] != "complete":
            raise AirflowFailException(
                f"{event['folder']} still incomplete after waiting {settings.month_wait_days():g} day(s) "
                f"(STREAMFLOW_MONTH_WAIT_DAYS), missing: {', '.join(event['missing'])}; once the month is "
                "there, clear this run")
        self.log.info("%s is complete: its run goes on", event["folder"])
