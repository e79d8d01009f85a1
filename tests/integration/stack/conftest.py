"""The deployment shared by this package's tests (see deployment.py): started once, stopped after the last one.

Package scope, so the API-path tests and the browser tests pay for one stack and one catch-up;
the tests build on each other's state in file order (test_airflow_paths.py, then test_browser.py).
The browser is Debian's chromium driven by Playwright (its bundled driver, no browser download).
"""

from __future__ import annotations

import dataclasses

import pytest

from streamflow_dev.stack import DAG_ID, TRAINING_DAG_ID
from tests.helpers import chromium, fresh_tab
from tests.integration.stack.deployment import (
    dag_parsed,
    deployed,
    runs,
    seeds_with_a_bad_month,
    trigger,
    wait,
    wait_for_run,
    wait_for_training_runs,
)


@pytest.fixture(scope="package")
def deployment(pg_server, seeds, tmp_path_factory):
    """Fresh metadata DB + warehouse, API server on a free port, then scheduler and dag-processor."""
    work = tmp_path_factory.mktemp("airflow-stack")
    broken_users = seeds_with_a_bad_month(seeds, work / "seeds")
    with deployed(pg_server, work, work / "seeds", STREAMFLOW_LAST_MONTH="2024-02") as running:
        yield dataclasses.replace(running, broken_users=broken_users)


@pytest.fixture(scope="package")
def caught_up(deployment):
    """Unpause both DAGs through the API (the UI's toggle), wait for catch-up and the training sets it triggers.

    Returns the ingest runs right after catch-up; `training_set` first, so that it is scheduled
    when the snapshot events arrive.
    """
    for dag_id in (TRAINING_DAG_ID, DAG_ID):
        wait(deployment, f"{dag_id} to be parsed", lambda dag_id=dag_id: dag_parsed(deployment, dag_id))
        response = deployment.api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        assert response.json()["is_paused"] is False
    wait(deployment, "catch-up to finish two runs",
         lambda: len(done := runs(deployment)) >= 2 and all(r["state"] in ("success", "failed") for r in done))
    caught = runs(deployment)
    if all(r["state"] == "success" for r in caught):
        def both_built() -> bool:
            training = runs(deployment, TRAINING_DAG_ID)
            if any(r["state"] == "failed" for r in training):
                return True  # the tests say what failed
            built = deployment.warehouse.execute("SELECT count(DISTINCT as_of) FROM training_set_manifest").fetchone()
            return built[0] >= 2 and all(r["state"] == "success" for r in training)

        wait_for_training_runs(deployment, 1)
        wait(deployment, "the training sets of both months", both_built)
    return caught


@pytest.fixture(scope="package")
def failed_validation_run(deployment, caught_up) -> dict:
    """A manual run of month_002 (as_of 2024-03-31, later than February): validate.usage_agg_30d fails."""
    response = trigger(deployment, {"month": "month_002"})
    assert response.status_code == 200, response.text
    return wait_for_run(deployment, response.json()["dag_run_id"])


@pytest.fixture(scope="package")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    with fresh_tab(browser) as tab:
        yield tab
