"""The real Airflow paths, end to end: scheduler + dag-processor + API server, as `make run` starts them.

The deployment is the package's (conftest.py, deployment.py). The tests build on each other's
state, in file order:

1. unpausing `training_set` and `ingest_month` makes catch-up create and run exactly January and
   February 2024; each month's five snapshot tasks emit asset events, each of which starts a
   `training_set` run that builds that month's training examples;
2. `airflow backfill create --reprocess-behavior completed` re-runs both; each is a replay of the
   files it was loaded from (nothing re-applied, January's snapshots stay frozen, so its snapshot
   tasks skip and emit nothing), so no table changes;
3. a REST trigger (what the UI's trigger form does) of an older month replays it when its files are
   the ones it was loaded from and is refused at run time when they differ (a scenario of
   tests/months.py each: a user dropped, a label flipped); a month name that is not `month_NNN` is
   rejected before any run exists;
4. the trigger form itself, in a browser, offers the month folders present and runs month_001;
5. a month whose data break a rule (BAD_MONTH) fails `validate.<table>`, the API's log endpoint
   shows the failed expectation and links to the validation view, and no asset event or training
   set follows.

The real months' figures and the bad months' outcomes come from tests/months.py and tests/golden.py.
Both real months through `airflow dags test`, and their re-runs, were test_dag_end_to_end.py's
first test: the same months and outcomes, proved here once (its figures are in the first test,
its re-runs are the backfill's).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from streamflow import training
from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow_dev import checks
from streamflow_dev.stack import DAG_ID, TRAINING_DAG_ID
from tests.golden import CHURNERS, FEBRUARY_CHURNERS, JANUARY_CHURNERS, PLAN_STREAM_TV_NULL, ROWS
from tests.integration.stack.deployment import (
    BAD_MONTH,
    FEBRUARY_RUN,
    FINISHED,
    JANUARY_RUN,
    TASKS_PER_RUN,
    all_hashes,
    api_log,
    asset_events,
    failed_tasks,
    failures,
    runs,
    task_states,
    trigger,
    usage_verdict,
    wait,
    wait_for_run,
    wait_for_training_runs,
)
from tests.months import MONTHS, REAL_MONTHS, scenario_id

pytestmark = pytest.mark.airflow



# ------------------------------------------------------------------------------------------- tests


def test_unpause_catches_up_exactly_january_then_february(deployment, caught_up):
    assert [(r["run_id"], r["run_type"], r["data_interval_start"], r["data_interval_end"]) for r in caught_up] == [
        (JANUARY_RUN, "scheduled", _utc(2024, 1, 1), _utc(2024, 2, 1)),
        (FEBRUARY_RUN, "scheduled", _utc(2024, 2, 1), _utc(2024, 3, 1)),
    ]
    assert [r["state"] for r in caught_up] == ["success", "success"], failures(deployment, caught_up)
    january, february = caught_up
    assert february["start_date"] >= january["end_date"]  # max_active_runs=1: one month after the other
    for run in caught_up:
        assert task_states(deployment, run["run_id"]) == {"success": TASKS_PER_RUN}
    # STREAMFLOW_LAST_MONTH=2024-02 ends the schedule: no third run will ever be created.
    assert deployment.metadata.execute(
        "SELECT next_dagrun_create_after FROM dag WHERE dag_id = %s", (DAG_ID,)).fetchone() == (None,)

    found = checks.collect(deployment.warehouse)
    assert found["live"] == {t.name: ROWS for t in TABLES}
    assert found["snapshots"] == {t.snapshot_table: {m.as_of: m.rows for m in REAL_MONTHS} for t in SNAPSHOTTED}
    assert found["as_of"] == [m.as_of for m in REAL_MONTHS] == ["2024-01-31", "2024-02-29"]
    assert found["churners"] == {m.as_of: m.churners for m in REAL_MONTHS} == CHURNERS
    assert found["subscriptions_plan_stream_tv_null"] == PLAN_STREAM_TV_NULL
    assert deployment.warehouse.execute(
        "SELECT count(*) FROM subscriptions WHERE add_on_security IS NOT NULL").fetchone()[0] == 0
    passed = deployment.warehouse.execute(
        "SELECT count(*) FILTER (WHERE success), count(*) FROM validation_results").fetchone()
    assert passed[0] == passed[1] > 0
    loaded = deployment.warehouse.execute(
        "SELECT run_id, month, count(*) FROM ingestion_ledger WHERE status = 'loaded' GROUP BY 1, 2 ORDER BY 2"
    ).fetchall()
    assert loaded == [(JANUARY_RUN, "month_000", len(TABLES)), (FEBRUARY_RUN, "month_001", len(TABLES))]
    # The point-in-time view reads January's labels even though February is in.
    january = deployment.warehouse.execute(
        "SELECT count(*), count(*) FILTER (WHERE churn_label), count(watch_hours_30d) FROM training_set('2024-01-31')"
    ).fetchone()
    assert january == (ROWS, JANUARY_CHURNERS, ROWS)
    assert deployment.warehouse.execute(
        "SELECT count(*) FILTER (WHERE churn_label) FROM training_set('2024-02-29')").fetchone() == (FEBRUARY_CHURNERS,)


def test_each_month_updates_the_five_snapshot_assets_and_its_training_set_follows(deployment, caught_up):
    # One event per snapshot task: the asset of its table, the month's as_of, what was stamped, the validation.
    events = asset_events(deployment)
    assert sorted((name, run_id) for name, run_id, _ in events) == sorted(
        (t.snapshot_table, run) for t in SNAPSHOTTED for run in (JANUARY_RUN, FEBRUARY_RUN))
    for name, run_id, extra in events:
        month, as_of = ("month_000", "2024-01-31") if run_id == JANUARY_RUN else ("month_001", "2024-02-29")
        assert (extra["snapshot_table"], extra["month"], extra["as_of"], extra["rows"]) == (name, month, as_of, ROWS)
        assert (extra["changed"], extra["frozen"], extra["dropped"]) == (True, False, 0)
        assert extra["validation"]["tables"] == len(TABLES)
        assert extra["validation"]["failed"] == 0
        assert extra["validation"]["passed"] == extra["validation"]["expectations"] > len(TABLES)

    # The training_set runs those events started: both months built, 7043 rows each, the course's churners.
    training_runs = runs(deployment, TRAINING_DAG_ID)
    assert {r["run_type"] for r in training_runs} == {"asset_triggered"}
    assert [r["state"] for r in training_runs] == ["success"] * len(training_runs), failures(
        deployment, training_runs, TRAINING_DAG_ID)
    found = checks.collect(deployment.warehouse)["training_sets"]
    assert {as_of: (built["rows"], built["churners"]) for as_of, built in found.items()} == {
        as_of: (ROWS, churners) for as_of, churners in CHURNERS.items()}
    assert {built["run_id"] for built in found.values()} <= {r["run_id"] for r in training_runs}
    assert deployment.warehouse.execute(
        "SELECT as_of::text, count(*), count(*) FILTER (WHERE churn_label) FROM training_examples"
        " GROUP BY as_of ORDER BY as_of").fetchall() == [(as_of, ROWS, n) for as_of, n in CHURNERS.items()]

    # January's rows as built when its month landed equal January rebuilt now that February is in.
    import psycopg

    with deployment.warehouse.transaction():
        rebuilt = training.build(deployment.warehouse, "2024-01-31", "test__rebuild_after_february")
        raise psycopg.Rollback  # leave the manifest as the DAG wrote it
    assert (rebuilt["rows"], rebuilt["content_md5"]) == (ROWS, found["2024-01-31"]["content_md5"])


def test_backfill_with_reprocess_reruns_both_months_and_changes_nothing(deployment, caught_up):
    before = all_hashes(deployment.warehouse)
    previous = {r["run_id"]: r for r in runs(deployment)}
    assert set(previous) == {JANUARY_RUN, FEBRUARY_RUN}
    events_before, training_before = asset_events(deployment), runs(deployment, TRAINING_DAG_ID)

    result = deployment.stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2024-01-01",
                                      "--to-date", "2024-02-29", "--reprocess-behavior", "completed", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (backfill_id,) = deployment.metadata.execute("SELECT id FROM backfill WHERE dag_id = %s", (DAG_ID,)).fetchone()
    wait(deployment, "the backfill to complete", lambda: deployment.metadata.execute(
        "SELECT completed_at IS NOT NULL FROM backfill WHERE id = %s", (backfill_id,)).fetchone()[0]
        and all(r["state"] in FINISHED for r in runs(deployment)))

    # Airflow 3.3 re-runs a completed month by clearing its existing dag_run and re-queueing it: no new
    # rows, the same run_ids, run_type switched to 'backfill', the backfill's id set, clear_number + 1.
    rerun = runs(deployment)
    assert [(r["run_id"], r["run_type"], r["backfill_id"]) for r in rerun] == [
        (JANUARY_RUN, "backfill", backfill_id), (FEBRUARY_RUN, "backfill", backfill_id)]
    for run in rerun:
        assert run["clear_number"] == previous[run["run_id"]]["clear_number"] + 1
        assert run["start_date"] > previous[run["run_id"]]["end_date"]  # ran again, after the catch-up
    january, february = rerun

    # February is the latest month: re-applied, every task ran a second time, nothing changed.
    assert february["state"] == "success", failures(deployment, rerun)
    assert task_states(deployment, FEBRUARY_RUN) == {"success": TASKS_PER_RUN}
    first_start, lowest_try = deployment.metadata.execute(
        "SELECT min(start_date), min(try_number) FROM task_instance WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, FEBRUARY_RUN)).fetchone()
    assert first_start > previous[FEBRUARY_RUN]["end_date"]
    assert lowest_try >= 2  # clearing a task instance starts a new try
    ledger = deployment.warehouse.execute(
        "SELECT status, inserted, updated, unchanged FROM ingestion_ledger WHERE run_id = %s ORDER BY id",
        (FEBRUARY_RUN,)).fetchall()
    assert len(ledger) == 2 * len(TABLES)  # the catch-up's rows, then the backfill's
    assert ledger[len(TABLES):] == [("replayed", 0, 0, ROWS)] * len(TABLES)  # same files: nothing re-applied

    # January is older than the loaded February, and its files are the ones it was loaded from: a replay.
    # Nothing is applied (that would roll the live tables back) and its snapshot stays frozen, so its
    # snapshot tasks skip: no asset event, no training set rebuilt from it.
    assert january["state"] == "success", failures(deployment, rerun)
    assert task_states(deployment, JANUARY_RUN) == {"success": TASKS_PER_RUN - len(SNAPSHOTTED),
                                                     "skipped": len(SNAPSHOTTED)}
    replayed = deployment.warehouse.execute(
        "SELECT status, inserted, updated, unchanged FROM ingestion_ledger WHERE run_id = %s ORDER BY id",
        (JANUARY_RUN,)).fetchall()
    assert replayed[len(TABLES):] == [("replayed", 0, 0, ROWS)] * len(TABLES)

    # February, still the latest month, re-confirms its stamp: five events saying nothing changed, and
    # one training_set run rebuilding February into the very same rows.
    new_events = asset_events(deployment)[len(events_before):]
    assert sorted((name, run_id, extra["as_of"], extra["changed"]) for name, run_id, extra in new_events) == sorted(
        (t.snapshot_table, FEBRUARY_RUN, "2024-02-29", False) for t in SNAPSHOTTED)
    training_runs = wait_for_training_runs(deployment, len(training_before) + 1)
    assert [r["state"] for r in training_runs] == ["success"] * len(training_runs), failures(
        deployment, training_runs, TRAINING_DAG_ID)
    builds = deployment.warehouse.execute(
        "SELECT as_of::text, content_md5 FROM training_set_manifest ORDER BY id").fetchall()
    assert builds[-1] == ("2024-02-29", checks.training_sets(deployment.warehouse)["2024-02-29"]["content_md5"])
    assert len({md5 for as_of, md5 in builds if as_of == "2024-02-29"}) == 1

    assert all_hashes(deployment.warehouse) == before


def test_rest_trigger_is_checked_by_param_schema_and_no_time_travel(deployment, caught_up):
    before = all_hashes(deployment.warehouse)
    run_ids = {r["run_id"] for r in runs(deployment)}

    # Not a month_NNN name: the Param schema rejects it before a run exists.
    rejected = trigger(deployment, {"month": "../x"})
    assert rejected.status_code == 400, rejected.text
    assert "does not match" in rejected.json()["detail"]
    assert {r["run_id"] for r in runs(deployment)} == run_ids

    # A valid but older month, from the files it was loaded from: the run replays it and writes nothing.
    response = trigger(deployment, {"month": "month_000"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert (created["run_type"], created["conf"], created["logical_date"]) == ("manual", {"month": "month_000"}, None)
    run = wait_for_run(deployment, created["dag_run_id"])
    assert run["state"] == "success", failures(deployment, [run])
    statuses = deployment.warehouse.execute(
        "SELECT DISTINCT status FROM ingestion_ledger WHERE run_id = %s", (run["run_id"],)).fetchall()
    assert statuses == [("replayed",)]
    assert all_hashes(deployment.warehouse) == before


@pytest.mark.parametrize("scenario", [MONTHS["january_without_its_last_user"], MONTHS["january_with_a_label_flipped"]],
                         ids=scenario_id)
def test_rest_trigger_of_an_older_month_from_other_files_is_refused_and_writes_nothing(deployment, caught_up, scenario,
                                                                                     tmp_path):
    """January with a file that differs from the one it was loaded from, February loaded: refused at
    the file's stage task (the other files replay), nothing written. The seeds' month_000 is put back after."""
    before = all_hashes(deployment.warehouse)
    month = deployment.seeds / scenario.source
    original = month.rename(tmp_path / scenario.source)
    try:
        scenario.build(tmp_path, month)
        response = trigger(deployment, {"month": scenario.source})
        assert response.status_code == 200, response.text
        run = wait_for_run(deployment, response.json()["dag_run_id"])
    finally:
        shutil.rmtree(month, ignore_errors=True)
        original.rename(month)
    assert run["state"] == ("success" if scenario.publishes else "failed")
    assert failed_tasks(deployment, run["run_id"]) == [(scenario.failed_task, 1)]
    log = api_log(deployment, run["run_id"], scenario.failed_task, 1)
    for line in scenario.log(month):
        assert line in log
    assert all_hashes(deployment.warehouse) == before


def test_trigger_form_in_a_browser_offers_the_month_folders_and_runs_month_001(deployment, caught_up, page, tmp_path):
    """The UI's trigger form, clicked through in chromium (before month_002 breaks the live tables)."""
    from playwright.sync_api import expect

    before = {r["run_id"] for r in runs(deployment)}
    training_before = runs(deployment, TRAINING_DAG_ID)
    page.goto(f"{deployment.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    month = dialog.locator("#element_month")
    expect(month).to_be_visible()
    offered = dialog.locator(f"datalist#{month.get_attribute('list')} option")
    expect(offered).to_have_count(3)
    assert [option.get_attribute("value") for option in offered.all()] == ["month_000", "month_001", "month_002"]

    month.fill("month_001")
    page.screenshot(path=tmp_path / "trigger-form.png")
    dialog.get_by_role("button", name="Trigger").click()
    expect(dialog).to_be_hidden()

    wait(deployment, "the triggered run", lambda: len({r["run_id"] for r in runs(deployment)} - before) == 1)
    [run_id] = {r["run_id"] for r in runs(deployment)} - before
    run = wait_for_run(deployment, run_id)
    assert (run["run_type"], run["conf"]) == ("manual", {"month": "month_001", "snapshot_policy": "restamp",
                                                         "accept": [], "require_marker": True})
    # February again, still the latest month, from the files it was loaded from: nothing applied, the
    # run succeeds, and its snapshots are re-announced (changed: false): training_set rebuilds February.
    assert run["state"] == "success", failures(deployment, [run])
    assert deployment.warehouse.execute(
        "SELECT DISTINCT status FROM ingestion_ledger WHERE run_id = %s", (run_id,)).fetchall() == [("replayed",)]
    assert {(extra["as_of"], extra["changed"]) for _, source, extra in asset_events(deployment)
            if source == run_id} == {("2024-02-29", False)}
    training_runs = wait_for_training_runs(deployment, len(training_before) + 1)
    assert training_runs[-1]["state"] == "success", failures(deployment, training_runs, TRAINING_DAG_ID)


def test_failed_validation_is_named_in_the_task_log_and_builds_no_training_set(deployment, failed_validation_run):
    run = failed_validation_run  # month_002 (BAD_MONTH), as_of 2024-03-31: later than February, allowed
    assert run["state"] == ("success" if BAD_MONTH.publishes else "failed")
    assert failed_tasks(deployment, run["run_id"]) == [(BAD_MONTH.failed_task, 1)]
    states = dict(deployment.metadata.execute(
        "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (DAG_ID, run["run_id"])))
    assert all(states[f"validate.{t.name}"] == "success" for t in TABLES if t.name != "usage_agg_30d")
    assert {states[f"snapshot_{t.name}"] for t in SNAPSHOTTED} | {states["publish"]} == {"upstream_failed"}

    log = api_log(deployment, run["run_id"], BAD_MONTH.failed_task, 1)
    # The row rule (3 users' negative watch hours), and the month-level damage: half of unique_devices_30d
    # blank, against January's and February's 0.
    for line in BAD_MONTH.log(deployment.seeds / "month_002"):
        assert line in log
    assert "null_fraction: this month 0.5001 (as_of 2024-03-31), previous month 0 (as_of 2024-02-29)" in log
    for user in deployment.broken_users:
        assert user in log
    # The log links to the validation view, which the API server serves from validation_results.
    link = f"{deployment.url}/streamflow/validation/{DAG_ID}/{quote(run['run_id'], safe='')}/validate.usage_agg_30d"
    assert f"Validation view: {link}" in log.replace("localhost", "127.0.0.1")
    page = deployment.api.get(link.removeprefix(deployment.url), headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert f"usage_agg_30d: {usage_verdict(deployment, run['run_id'])}" in page.text
    assert page.text.count("<tr class='fail'>") == 2

    # No snapshot stamped for 2024-03-31, so no asset event and no training set; the outcome is kept.
    found = checks.collect(deployment.warehouse)
    assert found["as_of"] == ["2024-01-31", "2024-02-29"]
    assert found["snapshots"] == {t.snapshot_table: {"2024-01-31": ROWS, "2024-02-29": ROWS} for t in SNAPSHOTTED}
    assert {extra["as_of"] for _, _, extra in asset_events(deployment)} == {"2024-01-31", "2024-02-29"}
    assert set(found["training_sets"]) == {"2024-01-31", "2024-02-29"}
    assert all(r["state"] in FINISHED for r in runs(deployment, TRAINING_DAG_ID))
    assert deployment.warehouse.execute(
        "SELECT as_of::text, column_name, unexpected_count FROM validation_results WHERE run_id = %s AND NOT success"
        " ORDER BY id", (run["run_id"],)).fetchall() == [("2024-03-31", column, n) for column, n in BAD_MONTH.failures]



# ----------------------------------------------------------------------------------------- helpers


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)
