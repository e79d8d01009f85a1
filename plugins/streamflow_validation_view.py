"""The validation results of a run in the Airflow UI: a FastAPI app in the API server + external views.

Airflow 3's plugin interface: `fastapi_apps` mounts the app at `/streamflow` in the API server,
and `external_views` add a **Validation** tab to every task instance and DAG run, an iframe whose
`{DAG_ID}`/`{RUN_ID}`/`{TASK_ID}` the UI fills in. The page is read from the warehouse's
`validation_results` (`streamflow_postgres` connection), not from a file: it works whichever
worker ran the task. The module imports only FastAPI (the API server has it loaded anyway) and the
ids it shares with the DAG (`streamflow.ids`); the hook, psycopg and the renderer are imported per request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from streamflow.ids import DAG_ID, URL_PREFIX, VALIDATION_ROUTE

app = FastAPI(title="StreamFlow validation results", docs_url=None, redoc_url=None, openapi_url=None)

#: The DAG whose runs validate tables; other DAGs' runs get 404 (run ids repeat across DAGs).
VALIDATING_DAG_ID = DAG_ID
# The page shows warehouse values inside the UI's origin: no script, no other origin, no sniffing.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
                    "X-Content-Type-Options": "nosniff"}


async def may_read_dag_run(request: Request, dag_id: str) -> None:
    """The UI's own rule for reading a DAG's runs: the caller's token (the UI's cookie, or a Bearer
    header), then the auth manager's verdict. Airflow mounts plugin apps without its auth, so the
    app asks itself; imported here because Airflow's API security module costs seconds to import
    and task processes load this plugin too."""
    if dag_id != VALIDATING_DAG_ID:
        raise HTTPException(status_code=404, detail=f"{dag_id} validates no table")
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, requires_access_dag

    user = await get_user(request, None, await bearer_scheme(request))
    requires_access_dag("GET", DagAccessEntity.RUN)(request, user)


def _page(dag_id: str, run_id: str, task_id: str | None) -> HTMLResponse:
    from streamflow import validation_view
    from streamflow.airflow_glue import warehouse_connection

    table_name = validation_view.table_of_task(task_id) if task_id else None
    rows = []
    if task_id is None or table_name is not None:
        with warehouse_connection() as conn:
            rows = validation_view.fetch(conn, run_id, table_name)
    return HTMLResponse(validation_view.render(rows, dag_id, run_id, task_id), headers=SECURITY_HEADERS)


# Plain `def`: FastAPI runs them in its thread pool, so the blocking query does not stall the server.
@app.get(VALIDATION_ROUTE + "/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse,
         dependencies=[Depends(may_read_dag_run)])
def task_instance_validation(dag_id: str, run_id: str, task_id: str) -> HTMLResponse:
    """One table's validation in a run (the task instance's tab); other tasks get a link to the run's."""
    return _page(dag_id, run_id, task_id)


@app.get(VALIDATION_ROUTE + "/{dag_id}/{run_id}", response_class=HTMLResponse,
         dependencies=[Depends(may_read_dag_run)])
def dag_run_validation(dag_id: str, run_id: str) -> HTMLResponse:
    """Every table's validation in a run (the DAG run's tab)."""
    return _page(dag_id, run_id, None)


class StreamflowValidationViewPlugin(AirflowPlugin):
    """Mounts the app and adds the Validation tab to task instances and DAG runs."""

    name = "streamflow_validation_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "StreamFlow validation results"}]
    external_views = [
        {"name": "Validation", "href": URL_PREFIX + VALIDATION_ROUTE + "/{DAG_ID}/{RUN_ID}/{TASK_ID}",
         "destination": "task_instance", "url_route": "streamflow_validation_task"},
        {"name": "Validation", "href": URL_PREFIX + VALIDATION_ROUTE + "/{DAG_ID}/{RUN_ID}",
         "destination": "dag_run", "url_route": "streamflow_validation_run"},
    ]
