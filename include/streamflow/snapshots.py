"""The snapshot SQL: `sql/stamp_snapshot.sql` rendered from the registry and run.

One path for the DAG's `snapshot_<table>` tasks (through `pipeline.stamp_snapshot`), the tests
and the bench: `stamp` runs the statements `render_stamp_sql` renders, once per process and table.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from streamflow.registry import SNAPSHOTTED, Table, snapshot_sql_params
from streamflow.settings import SQL_DIR

if TYPE_CHECKING:
    import psycopg

STAMP_TEMPLATE = SQL_DIR / "stamp_snapshot.sql"

#: What a run does to an as_of that is already stamped (the DAG's `snapshot_policy` param):
#: "restamp" brings it up to the live state (corrected files), "immutable" leaves it as first stamped.
SNAPSHOT_POLICIES = ("restamp", "immutable")


def render_stamp_template(table: Table) -> str:
    """`stamp_snapshot.sql` for one table, its identifier fragments filled in from the registry.

    Rendered here, never by Airflow's templating: Airflow lets a run's conf override `params`, so
    fragments left to its Jinja could be replaced by a trigger. What is left to bind is values
    only (`%(as_of)s`, `%(restamp)s`).
    """
    import jinja2

    template = jinja2.Template(STAMP_TEMPLATE.read_text(encoding="utf-8"), undefined=jinja2.StrictUndefined)
    return template.render(params=snapshot_sql_params(table))


@functools.cache
def render_stamp_sql(table: Table) -> tuple[str, ...]:
    """The statements of the rendered template, split as common-sql splits them (rendered once per table)."""
    import sqlparse

    text = sqlparse.format(render_stamp_template(table), strip_comments=True)
    return tuple(statement.rstrip(";").strip() for statement in sqlparse.split(text) if statement.strip())


def stamp(conn: psycopg.Connection, as_of: str, tables: tuple[Table, ...] = SNAPSHOTTED,
          restamp: bool = True) -> dict[str, tuple]:
    """Stamp snapshots at `as_of` in one transaction per table; return each table's count row.

    Args:
        conn: warehouse connection.
        as_of: the snapshot date (YYYY-MM-DD).
        tables: which snapshot tables.
        restamp: False leaves an as_of that is already stamped as it is (immutable snapshots).
    """
    results = {}
    params = {"as_of": as_of, "restamp": restamp}
    for table in tables:
        with conn.transaction():
            for statement in render_stamp_sql(table):
                # Never a prepared statement: a generic plan would not know which month's partition it
                # writes, a custom one prunes to it at plan time.
                cursor = conn.execute(statement, params, prepare=False)
                if cursor.description[0].name == "snapshot_table":  # the statement that stamps
                    results[table.snapshot_table] = cursor.fetchone()
    return results
