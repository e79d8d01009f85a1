"""The SQL files under `sql/queries/`, read once per process.

A query longer than a line lives in a file there, not in a Python string. What varies between
tables (identifiers) is filled in with psycopg.sql (`template`); values are always bound parameters.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from streamflow.settings import SQL_DIR

if TYPE_CHECKING:
    from psycopg import sql

QUERIES_DIR = SQL_DIR / "queries"


@functools.cache
def text(name: str) -> str:
    """`sql/queries/<name>.sql` as written."""
    return (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")


def template(name: str) -> sql.SQL:
    """`sql/queries/<name>.sql` as a psycopg.sql template: `.format(...)` fills its `{placeholders}`."""
    from psycopg import sql

    return sql.SQL(text(name))
