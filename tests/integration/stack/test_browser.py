"""What a person sees of a failed validation, in a real browser (chromium on loopback, see conftest.py).

The deployment is the package's, after test_airflow_paths.py: its failed month_002 run is opened
from the task instance page and from the DAG run page, and the Validation tab followed to the
failing expectation. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from streamflow_dev.stack import DAG_ID
from tests.golden import ROWS
from tests.integration.stack.deployment import usage_verdict
from tests.months import BLANKED_COLUMN

pytestmark = pytest.mark.airflow

def test_task_instance_validation_tab_shows_the_failing_expectation(deployment, failed_validation_run, page, tmp_path):
    from playwright.sync_api import expect

    run_id = failed_validation_run["run_id"]
    page.goto(f"{deployment.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/validate.usage_agg_30d")
    page.get_by_role("link", name="Validation", exact=True).click()

    view = page.frame_locator("iframe[title='Validation']")
    verdict = usage_verdict(deployment, run_id)
    expect(view.locator("h2")).to_have_text(f"usage_agg_30d: {verdict}")
    failing = view.locator("tr.fail")
    expect(failing).to_have_count(2)
    row_rule = failing.filter(has_text="expect_column_values_to_be_between")
    for text in ("FAIL", "watch_hours_30d", "max_value=720, min_value=0", f"3 of {ROWS} rows", "course rule (>= 0)",
                 *deployment.broken_users):
        expect(row_rule).to_contain_text(text)
    # The month-level failure: this month's figure, February's, the bound, and a trend over the months.
    history_check = failing.filter(has_text="null_fraction_jump")
    for text in (BLANKED_COLUMN, "0.5001", "previous (2024-02-29): 0", "at most 0.1 above the previous month"):
        expect(history_check).to_contain_text(text)
    trend = history_check.locator("svg")
    expect(trend).to_have_count(1)
    expect(trend.locator("title")).to_have_text("null_fraction by as_of: 2024-01-31 0, 2024-02-29 0, 2024-03-31 0.5001")
    passed = int(verdict.split("/")[0])
    expect(view.locator("tr.pass")).to_have_count(passed)
    history_check.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "task-instance-validation.png", full_page=True)


def test_dag_run_validation_tab_shows_every_table_of_the_run(deployment, failed_validation_run, page, tmp_path):
    from playwright.sync_api import expect

    run_id = failed_validation_run["run_id"]
    page.goto(f"{deployment.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    page.get_by_role("link", name="Validation", exact=True).click()

    view = page.frame_locator("iframe[title='Validation']")
    expect(view.locator("h2")).to_have_count(6)
    expect(view.locator("h2.failed")).to_have_text([f"usage_agg_30d: {usage_verdict(deployment, run_id)}"])
    expect(view.locator("tr.fail")).to_have_count(2)
    # One line per table: the blocking one first, the other five passed.
    summary = view.locator("ul.summary li")
    expect(summary).to_have_count(6)
    expect(summary.first).to_contain_text("usage_agg_30d:")
    expect(summary.first).to_contain_text("2 failed (blocks the publish)")
    page.screenshot(path=tmp_path / "dag-run-validation.png")
