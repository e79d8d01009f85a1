"""Write, the checked path: a file the typed COPY could not vouch for, staged as text, then cast.

The body is streamed into a TEMP table of text cells (`diagnosis.RAW`, with the line number),
then cast into the typed staging table: trimmed, blank as NULL, dates only as YYYY-MM-DD. A file
that breaks the contract (bad type, a date not YYYY-MM-DD, blank, padded or duplicated key, a user
neither live nor staged for the month) is refused with every offending line, column and value
(`streamflow.diagnosis`, or `copy_stream.copy_problem` for a line COPY cannot read), and nothing
is staged. `streamflow.stage` decides when this path runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow import staged_table
from streamflow.copy_stream import copy_problem, is_data_error, stream_body
from streamflow.diagnosis import ISO_DATE, RAW, diagnose, padded_key_filter, trimmed, unknown_user_filter
from streamflow.errors import ContractViolation
from streamflow.registry import KEY, Table

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg
    from psycopg import sql


class _BreaksContract(Exception):
    """Rows the casts and the staging key take but the contract refuses (a padded key, an unknown user)."""


def stage_as_text(conn: psycopg.Connection, table: Table, path: Path, header_bytes: int, columns: list[str],
                  target: sql.Identifier, staged_users: sql.Identifier | None) -> tuple[str, int]:
    """Stage the file as text, cast it into the staging table; return sha256 and rows, or refuse it."""
    import psycopg
    from psycopg import sql

    raw = sql.Identifier(RAW)
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE {raw} (line_no bigint GENERATED ALWAYS AS IDENTITY, {columns}) ON COMMIT DROP"
    ).format(raw=raw, columns=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)))
    try:
        sha256, rows = stream_body(conn, path, header_bytes, raw, columns)
    except psycopg.Error as error:
        raise ContractViolation(path, [copy_problem(error, path, columns)]) from None
    if rows == 0:
        raise ContractViolation(path, ["line 2: file has a header but no data rows"])
    # Checked on the text as written: the casts trim the key, after which " 7590-VHVEG" would
    # pass for "7590-VHVEG".
    padded = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {})").format(raw, padded_key_filter(sql.Identifier(KEY)))
    unknown = sql.SQL("SELECT EXISTS (SELECT FROM {} AS staged WHERE {})").format(
        target, unknown_user_filter(sql.Identifier("staged", KEY), staged_users))
    try:
        with conn.transaction():
            if conn.execute(padded).fetchone()[0]:
                raise _BreaksContract
            conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                target, sql.SQL(", ").join(map(sql.Identifier, columns)), _casts(table, columns), raw))
            staged_table.add_key(conn, target)
            if table.depends_on_users and conn.execute(unknown).fetchone()[0]:
                raise _BreaksContract
    except (psycopg.Error, _BreaksContract) as error:
        if isinstance(error, psycopg.Error) and not is_data_error(error):
            raise
        problems = diagnose(conn, table, columns, staged_users)
        if not problems and isinstance(error, psycopg.Error):
            problems = [f"rejected by PostgreSQL: {error.diag.message_primary}"]
        raise ContractViolation(path, problems) from None
    # ON COMMIT DROP covers a plain transaction; this covers a caller's enclosing one.
    conn.execute(sql.SQL("DROP TABLE {}").format(raw))
    return sha256, rows


def _casts(table: Table, columns: list[str]) -> sql.Composable:
    """The raw text cells as typed values: trimmed, blank as NULL, dates only as YYYY-MM-DD.

    The key is trimmed too, so that a whitespace-only one is NULL and the staging key refuses it
    (a padded one never gets here: `stage_as_text` refuses it first)."""
    from psycopg import sql

    def cast(name: str) -> sql.Composable:
        column = table.column(name)
        value = sql.Identifier(name)
        if name == KEY or column.pg_type != "text":
            value = trimmed(value)
        if column.pg_type == "date":  # anything but YYYY-MM-DD becomes an invalid date: the cast fails
            value = sql.SQL("CASE WHEN {v} ~ {iso} THEN {v} ELSE 'not YYYY-MM-DD: ' || {v} END").format(
                v=value, iso=sql.Literal(ISO_DATE))
        return sql.SQL("NULLIF({}, '')::{}").format(value, sql.SQL(column.pg_type))

    return sql.SQL(", ").join(cast(c) for c in columns)
