"""What a person sees of a failed validation, in a real browser (chromium on loopback, see conftest.py).

The deployment is the package's, after test_airflow_paths.py: its failed month_002 run is opened
from the task instance page and from the DAG run page, and the Validation tab followed to the
failing expectation. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from streamflow_dev.stack import DAG_ID
from tests.integration.stack.deployment import ROWS

pytestmark = pytest.mark.airflow

def test_task_instance_validation_tab_shows_the_failing_expectation(deployment, failed_validation_run, page, tmp_path):
    from playwright.sync_api import expect

    run_id = failed_validation_run["run_id"]
    page.goto(f"{deployment.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/validate.usage_agg_30d")
    page.get_by_role("link", name="Validation", exact=True).click()

    view = page.frame_locator("iframe[title='Validation']")
    expect(view.locator("h2")).to_have_text("usage_agg_30d: 9/10 expectations passed, 1 failed")
    failing = view.locator("tr.fail")
    expect(failing).to_have_count(1)
    for text in ("FAIL", "expect_column_values_to_be_between", "watch_hours_30d", "max_value=720, min_value=0",
                 f"3 of {ROWS} rows", "course rule (>= 0)", *deployment.broken_users):
        expect(failing).to_contain_text(text)
    expect(view.locator("tr.pass")).to_have_count(9)
    page.screenshot(path=tmp_path / "task-instance-validation.png")


def test_dag_run_validation_tab_shows_every_table_of_the_run(deployment, failed_validation_run, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(f"{deployment.url}/dags/{DAG_ID}/runs/{quote(failed_validation_run['run_id'], safe='')}")
    page.get_by_role("link", name="Validation", exact=True).click()

    view = page.frame_locator("iframe[title='Validation']")
    expect(view.locator("h2")).to_have_count(6)
    expect(view.locator("h2.failed")).to_have_text(["usage_agg_30d: 9/10 expectations passed, 1 failed"])
    expect(view.locator("tr.fail")).to_have_count(1)
    page.screenshot(path=tmp_path / "dag-run-validation.png")
