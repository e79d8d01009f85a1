"""MonthCompleteTrigger and MonthCompleteSensor in-process: the bounded wait ends in a clear failure."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from streamflow.completeness import MARKER_NAME, write_marker
from tests.conftest import ROOT


def _first_event(trigger, timeout: float = 30):
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first(), timeout))


def test_past_its_end_the_wait_reports_what_is_missing_and_the_task_fails_saying_so(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException
    from streamflow_month_wait import MonthCompleteSensor, MonthCompleteTrigger

    folder = tmp_path / "month_002"
    folder.mkdir()
    shutil.copy(ROOT / "data" / "seeds" / "month_001" / "users.csv", folder / "users.csv")
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()

    event = _first_event(MonthCompleteTrigger(str(folder), ended, 0.1))

    assert event["status"] == "timed_out"
    assert str(folder / "users.csv") not in event["missing"]
    assert event["missing"][-1] == str(folder / MARKER_NAME)
    monkeypatch.setenv("STREAMFLOW_MONTH_WAIT_DAYS", "2")
    with pytest.raises(AirflowFailException) as failed:
        MonthCompleteSensor(task_id="wait_for_month").execute_complete({}, event)
    message = str(failed.value)
    assert f"{folder} still incomplete after waiting 2 day(s) (STREAMFLOW_MONTH_WAIT_DAYS)" in message
    assert str(folder / "labels.csv") in message
    assert MARKER_NAME in message


def test_the_wait_ends_when_the_marker_lands_after_the_files(tmp_path):
    from streamflow_month_wait import MonthCompleteTrigger

    folder = tmp_path / "month_001"
    shutil.copytree(ROOT / "data" / "seeds" / "month_001", folder)
    (folder / MARKER_NAME).unlink()
    trigger = MonthCompleteTrigger(str(folder), (datetime.now(UTC) + timedelta(minutes=5)).isoformat(), 0.1)

    async def wait_then_land():
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # six files, no marker: still waiting
        write_marker(folder)
        return (await asyncio.wait_for(waiting, 10)).payload

    assert asyncio.run(wait_then_land()) == {"status": "complete", "folder": str(folder)}
