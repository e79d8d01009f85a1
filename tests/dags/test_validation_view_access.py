"""The Validation view's own access check: Airflow mounts plugin apps without its auth.

The stack tests open the view as the UI does (the dev stack's simple auth manager makes everyone
admin); here, the app alone, as a caller with no Airflow session reaches it.
"""

from __future__ import annotations

import pytest

PAGES = ("/validation/{dag_id}/manual__2024-03-01T00%3A00%3A00%2B00%3A00/validate.users",
         "/validation/{dag_id}/manual__2024-03-01T00%3A00%3A00%2B00%3A00")


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient
    from streamflow_validation_view import app

    return TestClient(app)


@pytest.mark.parametrize("page", PAGES)
def test_a_caller_without_a_token_gets_401_and_no_page(client, page):
    response = client.get(page.format(dag_id="ingest_month"))
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize("page", PAGES)
def test_runs_of_a_dag_that_validates_nothing_get_404(client, page):
    response = client.get(page.format(dag_id="training_set"))
    assert response.status_code == 404
    assert response.json() == {"detail": "training_set validates no table"}
