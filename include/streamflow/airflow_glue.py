"""What the `ingest_month` tasks need from Airflow, in one place.

* `warehouse_connection()` / `warehouse_sqlalchemy_url()`: the warehouse, resolved at run time
  from the `streamflow_postgres` connection (never at parse time, never from code).
* `fail_fast`: input errors (`streamflow.errors.DataError`) become `AirflowFailException`, so
  a bad file fails the task at once instead of burning retries meant for lost connections.
* `CPU_CLOCK`: default_args that log the CPU seconds a task's own code (the callable: COPY
  client, Great Expectations' Python) used, apart from what Airflow spends around it.
* `SNAPSHOT_ASSETS` / `announce()`: the snapshot tables as Airflow assets (from the registry), and
  the event a snapshot task emits, or a skip when it wrote nothing because its as_of is frozen.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING

from airflow.sdk import Asset

from streamflow.registry import SNAPSHOTTED
from streamflow.settings import WAREHOUSE_CONN_ID

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


def fail_fast(function: Callable) -> Callable:
    """Re-raise `DataError` as `AirflowFailException`: retrying bad input cannot help."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from streamflow.errors import DataError

        try:
            return function(*args, **kwargs)
        except DataError as error:
            raise AirflowFailException(str(error)) from error

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
