"""Every way a file's rows break its table's contract, each named with lines, column and values.

Runs on the error path only, over the file staged as text (`RAW`, one text column per file
column plus the line number), so a bad file is described in full, not only its first bad cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow import queries
from streamflow.registry import KEY, USERS, Table

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

#: The session's TEMP table of text cells the checked path stages a file into.
RAW = "streamflow_raw"
SAMPLE_LIMIT = 10
# A date must be written YYYY-MM-DD: PostgreSQL alone would also read "05/02/2022" (as DateStyle says).
ISO_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: What the contract trims off a cell and calls padding around a key: ASCII whitespace and the
#: no-break space a spreadsheet leaves, not spaces alone, so that "\t7590-VHVEG" cannot pass for
#: a new user beside "7590-VHVEG". PostgreSQL's `btrim(text)` strips spaces only, so it is given
#: these characters; Python's `str.strip(PADDING)` strips the same ones.
PADDING = " \t\n\r\v\f\u00a0"


# PADDING as a PostgreSQL escape string of \u code points: the query text then holds no raw
# newline, which would end a `--` comment that names the placeholder this fills.
_PADDING_SQL = "E'" + "".join(f"\\u{ord(character):04x}" for character in PADDING) + "'"


def trimmed(value: sql.Composable) -> sql.Composable:
    """`value` with the contract's padding stripped from both ends (`btrim(value, PADDING)`)."""
    from psycopg import sql

    return sql.SQL("btrim({}, {})").format(value, sql.SQL(_PADDING_SQL))


def cell(name: str, alias: str | None = None) -> sql.Composable:
    """A raw cell as the contract reads it: trimmed of `PADDING`, blank as NULL."""
    from psycopg import sql

    column = sql.Identifier(alias, name) if alias else sql.Identifier(name)
    return sql.SQL("NULLIF({}, '')").format(trimmed(column))


def padded_key_filter(key: sql.Composable) -> sql.Composable:
    """`key` is not blank but carries surrounding `PADDING`: refused, never trimmed, so that it
    cannot pass for the user it would become (a blank key is refused as blank)."""
    from psycopg import sql

    return sql.SQL("{key} <> {trimmed} AND {trimmed} <> ''").format(key=key, trimmed=trimmed(key))


def unknown_user_filter(key: sql.Composable, staged_users: sql.Composable | None) -> sql.Composable:
    """`key` is neither a live user nor (when given) a user staged for the same month."""
    from psycopg import sql

    live = sql.SQL("NOT EXISTS (SELECT 1 FROM {users} AS known WHERE known.{k} = {key})").format(
        users=sql.Identifier(USERS), k=sql.Identifier(KEY), key=key)
    if staged_users is None:
        return live
    return sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} AS staged_user WHERE staged_user.{} = {})").format(
        live, staged_users, sql.Identifier(KEY), key)


def diagnose(conn: psycopg.Connection, table: Table, columns: list[str],
             staged_users: sql.Composable | None = None) -> list[str]:
    """Every way the raw rows break the contract, each with lines, column and values."""
    from psycopg import sql

    raw, key = sql.Identifier(RAW), sql.Identifier(KEY)
    key_cell = cell(KEY)
    problems: list[str] = []

    def sampled(query: sql.Composable, params: tuple | dict = ()) -> tuple[int, list[tuple]]:
        rows = conn.execute(sql.SQL("SELECT *, count(*) OVER () FROM ({}) AS found ORDER BY 1 LIMIT {}").format(
            query, sql.Literal(SAMPLE_LIMIT)), params).fetchall()
        return (rows[0][-1] if rows else 0), [row[:-1] for row in rows]

    def describe(rows: list[tuple]) -> str:
        return ", ".join(f"line {line} {value!r}" for line, value in rows)

    count, rows = sampled(sql.SQL("SELECT line_no + 1, coalesce({key}, '') FROM {raw} WHERE {cell} IS NULL").format(
        key=key, raw=raw, cell=key_cell))
    if count:
        problems.append(f'column "{KEY}": {count} blank key(s): {describe(rows)}')
    count, rows = sampled(sql.SQL("SELECT line_no + 1, {key} FROM {raw} WHERE {padded}").format(
        key=key, raw=raw, padded=padded_key_filter(key)))
    if count:
        problems.append(f'column "{KEY}": {count} padded user_id(s) (surrounding whitespace): {describe(rows)}')
    for name in columns:
        pg_type = table.column(name).pg_type
        if pg_type == "text":
            continue
        invalid = queries.template("diagnosis_invalid_values").format(column=sql.Identifier(name), cell=cell(name),
                                                                      raw=raw)
        count, rows = sampled(invalid, {"pg_type": pg_type, "iso_date": ISO_DATE})
        if count:
            kind = f"{pg_type} (YYYY-MM-DD)" if pg_type == "date" else pg_type
            problems.append(f'column "{name}": {count} value(s) that are not a valid {kind}: {describe(rows)}')
    count, rows = sampled(queries.template("diagnosis_duplicated_keys").format(key=key_cell, raw=raw))
    if count:
        listed = "; ".join(f"{user!r} on lines {lines}" for _, user, lines in rows)
        problems.append(f'column "{KEY}": {count} duplicated user_id(s): {listed}')
    if table.depends_on_users:
        raw_key = cell(KEY, alias="raw")
        count, rows = sampled(sql.SQL(
            "SELECT line_no + 1, {raw_key} FROM {raw} AS raw WHERE {raw_key} IS NOT NULL AND {unknown}"
        ).format(raw_key=raw_key, raw=raw, unknown=unknown_user_filter(raw_key, staged_users)))
        if count:
            problems.append(f'column "{KEY}": {count} user_id(s) not in table {USERS}: {describe(rows)}')
    return problems
