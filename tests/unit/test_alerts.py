"""The late-month alert, from the context Airflow gives a Deadline Alert callback."""

from __future__ import annotations

from streamflow import alerts


def test_the_alert_names_the_month_its_as_of_the_run_and_the_deadline(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_PUBLISH_DEADLINE_DAYS", "3")
    alert = alerts.late_month_alert({
        "dag_run": {"dag_id": "ingest_month", "dag_run_id": "scheduled__2024-03-01T00:00:00+00:00",
                    "data_interval_end": "2024-03-01T00:00:00Z", "state": "running"},
        "deadline": {"id": "x", "deadline_time": "2024-03-04T00:00:00+00:00"}})
    assert (alert["month"], alert["as_of"], alert["run_id"], alert["state"]) == (
        "month_001", "2024-02-29", "scheduled__2024-03-01T00:00:00+00:00", "running")
    assert alert["message"] == ("ingest_month: month_001 (as_of 2024-02-29) is not published 3 day(s) after its month "
                                "ended (deadline 2024-03-04T00:00:00+00:00); run "
                                "scheduled__2024-03-01T00:00:00+00:00 is running")


def test_a_run_without_an_interval_still_alerts():
    alert = alerts.late_month_alert({"dag_run": {"dag_id": "ingest_month", "dag_run_id": "r", "state": "failed"}})
    assert (alert["month"], alert["as_of"]) == (None, None)
    assert "the month (as_of None)" in alert["message"]


def test_the_callback_returns_text_airflow_can_store_as_its_output(monkeypatch):
    """Airflow writes the callback's return value into a text column: a dict there crashes the triggerer."""
    import asyncio
    import json

    monkeypatch.delenv("STREAMFLOW_ALERT_WEBHOOK_URL", raising=False)
    output = asyncio.run(alerts.month_late(context={"dag_run": {"dag_id": "ingest_month", "dag_run_id": "r"}}))
    assert isinstance(output, str)
    assert json.loads(output)["alert"] == "month_late"
