"""What the DAGs need from Airflow, in one place: the package's only Airflow imports.

* `default_args()`: what every task of both DAGs shares (owner, retries with backoff, CPU clock).
* `ingest_params()`, `late_month_deadline()`: `ingest_month`'s trigger form (JSON Schema params)
  and its Deadline Alert.
* `warehouse_connection()` / `warehouse_sqlalchemy_url()`: the warehouse, resolved at run time
  from the `streamflow_postgres` connection (never at parse time, never from code).
* `pipeline_step()`: a step of `streamflow.pipeline` on a warehouse connection, given the run's
  month from its XCom (`RunMonth.from_xcom`).
* `fail_fast`: input errors (`streamflow.errors.DataError`) become `AirflowFailException`, so
  a bad file fails the task at once instead of burning retries meant for lost connections.
* `CPU_CLOCK`: default_args that log the CPU seconds a task's own code (the callable: COPY
  client, Great Expectations' Python) used, apart from what Airflow spends around it.
* `SNAPSHOT_ASSETS` / `announce()`: the snapshot tables as Airflow assets (from the registry), and
  the event a snapshot task emits, or a skip when it wrote nothing because its as_of is frozen.

The ids the DAG, the Validation view and the stack share (DAG id, task group id, URL prefix) are
`streamflow.ids`: plain strings, which the pipeline reads too (without Airflow).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AsyncCallback, DeadlineAlert, Param

from streamflow import alerts, months, settings
from streamflow.history import CHECK_ID_PATTERN
from streamflow.registry import SNAPSHOTTED
from streamflow.run import DEFAULT_SNAPSHOT_POLICY
from streamflow.settings import WAREHOUSE_CONN_ID
from streamflow.snapshots import SNAPSHOT_POLICIES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import psycopg

log = logging.getLogger(__name__)
_cpu_started: float | None = None  # one task per process: the task runner's child


def _start_cpu_clock(context) -> None:
    global _cpu_started
    _cpu_started = time.process_time()


def _log_cpu_clock(context, result=None) -> None:
    if _cpu_started is not None:
        log.info("%s %.3f s", CPU_LOG_EVENT, time.process_time() - _cpu_started)


#: Logged after a task's callable returns, with its CPU seconds (`make bench` sums them from the task logs).
CPU_LOG_EVENT = "CPU in the task's own code:"
#: `default_args` entries: time each task's callable (pre_execute/post_execute run right around it).
CPU_CLOCK = {"pre_execute": _start_cpu_clock, "post_execute": _log_cpu_clock}

def default_args() -> dict[str, Any]:
    """Both DAGs' `default_args`. A lost connection (server restarting, a killed worker) is retried
    after `STREAMFLOW_RETRY_DELAY_S` (30 s), then about twice that; bad input fails at once (`fail_fast`)."""
    return {"owner": "data-platform", "retries": 2, "retry_delay": timedelta(seconds=settings.retry_delay_seconds()),
            "retry_exponential_backoff": 2.0, **CPU_CLOCK}


def late_month_deadline(reference) -> list[DeadlineAlert] | None:
    """The Deadline Alert of a month not published `STREAMFLOW_PUBLISH_DEADLINE_DAYS` after `reference`
    (the plugin's MonthPublishDeadline: its data interval's end); the triggerer runs the callback. 0 days: none."""
    days = settings.publish_deadline_days()
    if not days:
        return None
    return [DeadlineAlert(reference=reference, callback=AsyncCallback(alerts.month_late),
                          interval=timedelta(days=days))]


def ingest_params() -> dict[str, Param]:
    """`ingest_month`'s params: optional overrides of a scheduled run, with the trigger form's text."""
    return {
        "month": Param(
            # The length too: JSON Schema's `$` also matches before a trailing newline.
            None, type=["null", "string"], pattern=months.MONTH_NAME_PATTERN, minLength=9, maxLength=9,
            title="Month folder (month_NNN)", examples=months.available(settings.seeds_dir()),
            description="Load this month instead of the one the data interval covers (pick one of the folders "
                        "present, or type a name); empty for scheduled runs.",
        ),
        "require_marker": Param(
            True, type="boolean", title="Require the completeness marker",
            description="Off: load a month that has no `_manifest.json` (its six files must be there), unchecked.",
        ),
        "snapshot_policy": Param(
            DEFAULT_SNAPSHOT_POLICY, type="string", enum=list(SNAPSHOT_POLICIES),
            title="If this as_of is already stamped",
            description="restamp: bring its snapshots up to the (corrected) live state; immutable: leave them.",
        ),
        "accept": Param(
            [], type="array", items={"type": "string", "pattern": CHECK_ID_PATTERN}, uniqueItems=True,
            title="Accept these failed checks against history",
            description="For a month that really changed: ids of failed checks (`<table>.<check>[.<column>]`, as the "
                        "validate task's log names them) that this run publishes anyway; recorded in the ledger.",
        ),
    }


#: One asset per snapshot table, by live table name: `snapshot_<table>` declares it as its outlet.
SNAPSHOT_ASSETS: dict[str, Asset] = {
    t.name: Asset(uri=t.snapshot_asset_uri, name=t.snapshot_table, group="streamflow_snapshots") for t in SNAPSHOTTED
}


def _hook():
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)


@contextlib.contextmanager
def warehouse_connection() -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection to the warehouse, closed on exit."""
    conn = _hook().get_conn()
    try:
        yield conn
    finally:
        conn.close()


def warehouse_sqlalchemy_url() -> str:
    """The warehouse as a SQLAlchemy URL string (for Great Expectations)."""
    return _hook().sqlalchemy_url.render_as_string(hide_password=False)


def pipeline_step(name: str, *args, month: dict) -> dict:
    """`streamflow.pipeline.<name>(conn, *args, run)` on a warehouse connection, `run` being the
    run's month decoded from its XCom (imported when the task runs: nothing of it at parse time)."""
    from streamflow import pipeline
    from streamflow.run import RunMonth

    with warehouse_connection() as conn:
        return getattr(pipeline, name)(conn, *args, RunMonth.from_xcom(month))


def fail_fast(function: Callable) -> Callable:
    """Re-raise `DataError` as `AirflowFailException`: retrying bad input cannot help (a task so
    wrapped is marked `fails_fast`, for the DAG tests)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from streamflow.errors import DataError

        try:
            return function(*args, **kwargs)
        except DataError as error:
            raise AirflowFailException(str(error)) from error

    wrapper.fails_fast = True
    return wrapper


def announce(outlet_events, table_name: str, extra: dict) -> dict:
    """Attach `extra` to the table's asset event; skip the task (no event) when the as_of is frozen.

    A replay of an older month writes no snapshot row: without the skip, a successful task would
    still emit an event and the training set of that month would be rebuilt for nothing.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    if extra["frozen"]:
        raise AirflowSkipException(
            f"{extra['snapshot_table']} at as_of {extra['as_of']} is frozen (a later month is loaded): "
            "nothing written, no asset event")
    outlet_events[SNAPSHOT_ASSETS[table_name]].extra = extra
    return extra
