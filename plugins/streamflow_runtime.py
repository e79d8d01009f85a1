"""What the `ingest_month` tasks need from Airflow, in one place.

* `warehouse_connection()` / `warehouse_sqlalchemy_url()`: the warehouse, resolved at run time
  from the `streamflow_postgres` connection (never at parse time, never from code).
* `fail_fast`: input errors (`streamflow.errors.DataError`) become `AirflowFailException`, so
  a bad file fails the task at once instead of burning retries meant for lost connections.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

from streamflow.settings import WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import psycopg


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
