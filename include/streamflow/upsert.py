"""Load one month's CSV into its live table: stream, check, write, in one transaction.

1. The header is read and checked against the registry (unknown, duplicated, missing columns).
2. First load of a table (it is empty): the body is `COPY`'d straight into it, the floor of
   what PostgreSQL can load. Kept only where the result is what step 3 would give (dates
   written YYYY-MM-DD, keys not padded); anything else rolls it back to a savepoint and step 3
   decides.
3. Otherwise the body is streamed with `COPY ... FROM STDIN` into a TEMP staging table of text
   columns (plus the line number), so no file is ever held in memory and NUMERIC text stays exact,
   and one `MERGE` (a hash join with the live table) casts the staged text in: new users are
   inserted, rows are updated only where a value IS DISTINCT FROM the stored one, and rows that
   did not change are not touched at all (no lock, no new row version, no WAL).
   That statement is the contract gate: a row that breaks it (bad type, a date not YYYY-MM-DD,
   blank key, unknown user) aborts it; duplicated keys are refused just before it. Either way
   a diagnosis names every offending line, and the transaction rolls back: the live table
   stays exactly as it was.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from streamflow import settings
from streamflow.errors import ContractViolation, MissingInput
from streamflow.registry import KEY, USERS, Table

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

log = logging.getLogger(__name__)

STAGING = "streamflow_staging"
COPY_CHUNK_BYTES = 1 << 20
SAMPLE_LIMIT = 10
# SQLSTATEs of a COPY or MERGE that the data (not the server) caused.
DATA_SQLSTATE_CLASSES = ("22", "23", "21")
# A date must be written YYYY-MM-DD: PostgreSQL alone would also read "05/02/2022" (as DateStyle says).
ISO_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# For this transaction only: the MERGE's hash of the live keys (~60 MB a million) stays in memory.
WORK_MEM = "256MB"


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert did, small enough for XCom and the ingestion ledger."""

    table: str
    file: str
    sha256: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    columns: tuple[str, ...]
    absent_columns: tuple[str, ...]  # optional table columns the file did not carry (left as they were)
    method: str  # "copy": first load straight into the empty table; "merge": staged; "replay": nothing applied

    def as_dict(self) -> dict:
        return asdict(self)


def month_file(seeds_dir: Path, month: str, table: Table) -> Path:
    return seeds_dir / month / table.file_name


def missing_files(seeds_dir: Path, month: str, tables: tuple[Table, ...]) -> list[str]:
    """Paths a month needs that are not there (the folder itself when it is missing)."""
    folder = seeds_dir / month
    if not folder.is_dir():
        return [str(folder) + "/"]
    return [str(month_file(seeds_dir, month, t)) for t in tables if not month_file(seeds_dir, month, t).is_file()]


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path, table: Table) -> tuple[list[str], int]:
    """Check a file's header against its table; return the column names and the header's byte length."""
    if not path.is_file():
        raise MissingInput(f"{path}: file not found (table {table.name})")
    size = path.stat().st_size
    cap = settings.max_file_bytes()
    if size > cap:
        raise ContractViolation(path, [f"file is {size} bytes, over the {cap}-byte cap (STREAMFLOW_MAX_FILE_BYTES)"])
    with path.open("rb") as handle:
        raw = handle.readline()
    if not raw.strip():
        raise ContractViolation(path, ["line 1: file is empty (no header row)"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        position = len(next(csv.reader([raw[:error.start].decode("utf-8-sig")]), [""]))
        cells = next(csv.reader([raw.decode("utf-8-sig", "backslashreplace")]))
        cell = cells[position - 1] if position <= len(cells) else ""
        raise ContractViolation(path, [f"line 1, column {position} ({cell.strip()}): header is not UTF-8 "
                                       f"(byte {raw[error.start:error.start + 1]!r} at offset {error.start})"]) from None
    names = [name.strip() for name in next(csv.reader([text]))]
    problems = []
    known = set(table.column_names)
    for position, name in enumerate(names, start=1):
        if name not in known:
            problems.append(f"line 1, column {position}: unknown column {name!r} (table {table.name} has {', '.join(table.column_names)})")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    problems += [f"line 1: column {name!r} appears {names.count(name)} times" for name in duplicated]
    problems += [f"line 1: required column {name!r} is missing" for name in table.required_columns if name not in names]
    if problems:
        raise ContractViolation(path, problems)
    return names, len(raw)


def upsert_file(conn: psycopg.Connection, table: Table, path: Path) -> UpsertResult:
    """Upsert one CSV into `table` in one transaction (see the module docstring).

    Args:
        conn: a psycopg 3 connection not inside a transaction (e.g. `PostgresHook.get_conn()`).
        table: the registry entry of the target table.
        path: the month's CSV for that table.

    Raises:
        MissingInput: the file is not there.
        ContractViolation: header, encoding, types, keys or users do not match; nothing written.
    """
    from psycopg import sql

    columns, header_bytes = read_header(path, table)
    with conn.transaction():
        conn.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
        empty = not conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(table.name))).fetchone()[0]
        copied = _copy_into_empty_table(conn, table, path, header_bytes, columns) if empty else None
        if copied is not None:
            sha256, rows = copied
            inserted, updated, method = rows, 0, "copy"
        else:
            sha256, rows, inserted, updated = _staged_merge(conn, table, path, header_bytes, columns, empty)
            method = "merge"
    result = UpsertResult(
        table=table.name, file=str(path), sha256=sha256, rows=rows, inserted=inserted, updated=updated,
        unchanged=rows - inserted - updated, columns=tuple(columns),
        absent_columns=tuple(c for c in table.column_names if c not in columns), method=method,
    )
    log.info("upsert %s from %s (%s): %d rows, %d inserted, %d updated, %d unchanged%s", table.name, path, method,
             rows, inserted, updated, result.unchanged,
             f"; columns absent from the file, left as they were: {', '.join(result.absent_columns)}" if result.absent_columns else "")
    return result


class _NotEquivalent(Exception):
    """The direct COPY would not give what the staged path gives: roll it back."""


def _copy_into_empty_table(conn: psycopg.Connection, table: Table, path: Path, header_bytes: int,
                           columns: list[str]) -> tuple[str, int] | None:
    """First load: `COPY` the file straight into the (empty) live table; None where it cannot decide.

    The typed COPY reads each cell as the staged path's casts do (input functions ignore the
    whitespace `btrim` strips; FORCE_NULL makes a blank cell NULL, quoted or not), and the
    table's primary key and foreign key refuse blank, duplicated and unknown user_ids. What it
    would read differently is checked on the side: a date not written YYYY-MM-DD (PostgreSQL
    also reads "05/02/2022"), by a scan of the file that runs while the COPY streams; a padded
    user_id, after it (where no foreign key to the trimmed users keys catches it). Any error or
    doubt rolls back to the savepoint and the staged path runs, so a bad file gets exactly the
    same diagnosis.
    """
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from psycopg import sql

    target, key = sql.Identifier(table.name), sql.Identifier(KEY)
    dates = [index for index, name in enumerate(columns) if table.column(name).pg_type == "date"]
    try:
        # The savepoint is what a refused COPY rolls back to, leaving the table as it was.
        with ThreadPoolExecutor(max_workers=1) if dates else contextlib.nullcontext() as side, conn.transaction():
            iso_rows = side.submit(_rows_if_dates_are_iso, path, len(columns), dates) if dates else None
            sha256, rows = _stream_body(conn, path, header_bytes, target, columns, force_null=True)
            if rows == 0 or (iso_rows is not None and iso_rows.result() != rows):
                raise _NotEquivalent  # empty, a date not YYYY-MM-DD, or a file csv reads otherwise
            if not table.depends_on_users and conn.execute(sql.SQL(
                    "SELECT EXISTS (SELECT FROM {} WHERE {key} <> btrim({key}))").format(target, key=key)).fetchone()[0]:
                raise _NotEquivalent
    except _NotEquivalent:
        return None
    except psycopg.Error as error:
        if not (error.sqlstate or "").startswith(DATA_SQLSTATE_CLASSES):
            raise  # not the data: a lost connection, a timeout
        return None
    return sha256, rows


def _rows_if_dates_are_iso(path: Path, width: int, dates: list[int]) -> int | None:
    """The data rows of a file whose date cells are all blank or YYYY-MM-DD; None otherwise.

    None too for anything this reading cannot vouch for (a row of another width, bytes that are
    not UTF-8, a NUL, a quote inside a field, where PostgreSQL's CSV and Python's part ways):
    the staged path then reads the file and names the problem.
    """
    iso = re.compile(ISO_DATE)
    rows = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            handle.readline()  # read_header has checked it; COPY starts after it too
            for record in csv.reader(handle):
                rows += 1
                if len(record) != width or any('"' in cell for cell in record):
                    return None
                for index in dates:
                    cell = record[index].strip(" ")  # what btrim strips
                    if cell and not iso.fullmatch(cell):  # not match: Python's $ also matches before a final newline
                        return None
    except (UnicodeDecodeError, csv.Error):
        return None
    return rows


def _staged_merge(conn: psycopg.Connection, table: Table, path: Path, header_bytes: int,
                  columns: list[str], target_empty: bool) -> tuple[str, int, int, int]:
    """Stage the file as text, check its keys, MERGE it in; return sha256, rows, inserted, updated."""
    import psycopg
    from psycopg import sql

    staging, target = sql.Identifier(STAGING), sql.Identifier(table.name)
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE {staging} (line_no bigint GENERATED ALWAYS AS IDENTITY, {columns}) ON COMMIT DROP"
    ).format(staging=staging, columns=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)))
    try:
        sha256, rows = _stream_body(conn, path, header_bytes, staging, columns)
    except psycopg.Error as error:
        raise ContractViolation(path, [_copy_problem(error, path, columns)]) from None
    if rows == 0:
        raise ContractViolation(path, ["line 2: file has a header but no data rows"])
    # Into an empty table every line is an INSERT, and the primary key refuses a second one.
    if not target_empty and _has_duplicate_keys(conn):
        raise ContractViolation(path, diagnose(conn, table, columns))
    count = sql.SQL("SELECT count(*) FROM {}").format(target)
    try:
        with conn.transaction():
            before = conn.execute(count).fetchone()[0]
            written = conn.execute(_merge_statement(table, columns)).rowcount
            inserted = conn.execute(count).fetchone()[0] - before  # MERGE only inserts and updates
    except psycopg.Error as error:
        if not (error.sqlstate or "").startswith(DATA_SQLSTATE_CLASSES):
            raise
        problems = diagnose(conn, table, columns) or [f"rejected by PostgreSQL: {error.diag.message_primary}"]
        raise ContractViolation(path, problems) from None
    # ON COMMIT DROP covers a plain transaction; this covers a caller's enclosing one.
    conn.execute(sql.SQL("DROP TABLE {}").format(staging))
    return sha256, rows, inserted, written - inserted


# A line holding only \. : PostgreSQL before 18 takes it for the end of a CSV COPY's data and drops
# the rest of the file without an error. Matched with the line end before it (and after it, but for
# the last line): four bytes at most, so a window that carries three bytes over misses none.
LONE_END_MARKER = re.compile(rb"[\r\n]\\\.[\r\n]")
LONE_END_MARKER_LAST_LINE = re.compile(rb"[\r\n]\\\.\Z")


def _stream_body(conn: psycopg.Connection, path: Path, header_bytes: int, target, columns: list[str],
                 force_null: bool = False) -> tuple[str, int]:
    """`COPY target (columns) FROM STDIN` everything after the header; return the file's sha256 and rows.

    Args:
        target: a `psycopg.sql.Identifier` (the live table, or the staging table).
        force_null: a blank cell is NULL even when quoted (what the staged casts' NULLIF does).

    Raises:
        ContractViolation: a line holding only `\\.` (LONE_END_MARKER), refused on every server.
    """
    from psycopg import sql

    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING 'UTF8'{})").format(
        target, names, sql.SQL(", FORCE_NULL ({})").format(names) if force_null else sql.SQL(""))

    def refuse(line: int) -> ContractViolation:
        return ContractViolation(path, [f"line {line}: a line holding only \\. (before PostgreSQL 18 it ends "
                                        "a CSV COPY: the rest of the file would be dropped)"])

    digest = hashlib.sha256()
    with conn.cursor() as cursor, path.open("rb") as handle:
        digest.update(handle.read(header_bytes))
        carry, complete_lines = b"\n", 1  # the body starts a line; the header is line 1
        with cursor.copy(copy) as stream:
            while chunk := handle.read(COPY_CHUNK_BYTES):
                window = carry + chunk
                if b"\\." in window and (found := LONE_END_MARKER.search(window)):  # `in` first: 5x faster on a clean chunk
                    raise refuse(complete_lines + window.count(b"\n", 0, found.start() + 1) - carry.count(b"\n") + 1)
                complete_lines += chunk.count(b"\n")
                carry = window[-3:]
                digest.update(chunk)
                stream.write(chunk)
            if LONE_END_MARKER_LAST_LINE.search(carry):
                raise refuse(complete_lines + 1)
        return digest.hexdigest(), cursor.rowcount


def _copy_problem(error: Exception, path: Path, columns: list[str]) -> str:
    """Turn a COPY error ("... COPY streamflow_staging, line 4, column x: ...") into file terms."""
    diag = getattr(error, "diag", None)
    message = (diag.message_primary if diag else None) or str(error)
    located = _locate_malformed_record(path, columns)
    if located:
        return f"{located[0]}: {message}{located[1]}"
    context = (diag.context if diag else None) or ""
    found = re.search(r"line (\d+)(?:, column (\w+))?", context)
    if not found:
        return message
    where = f"line {int(found.group(1)) + 1}"  # COPY counts from the first data line; the file from its header
    if found.group(2):
        where += f', column "{found.group(2)}"'
    return f"{where}: {message}"


def _locate_malformed_record(path: Path, columns: list[str]) -> tuple[str, str] | None:
    """After COPY refused a file, stream it again and point at its first malformed record.

    Returns ("line N, column C", " (detail with the offending value)") or None. Runs on that error
    path only. Lines are the file's physical lines (header = line 1), as an editor shows them.
    """
    def shown(text: str) -> str:
        """Quoted, with bytes that are not UTF-8 text (and NULs) written as \\xNN."""
        text = text.rstrip("\r\n").replace("\x00", "\\x00")
        return "'" + text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") + "'"

    def name(index: int) -> str:
        return f'"{columns[index]}"' if index < len(columns) else str(index + 1)

    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        handle.readline()  # the header, already checked by read_header
        record: list[str] = []  # the physical lines of the record being parsed

        def lines():
            for line in handle:
                record.append(line)
                yield line

        def unclosed_quote() -> tuple[str, str]:
            opened = next(csv.reader([record[0]]))  # the first line alone ends inside the open field
            return (f"line {start}, column {name(len(opened) - 1)}",
                    f" (a quote opened on this line is not closed on it: {shown(record[0])})")

        start = 2
        try:
            for fields in csv.reader(lines()):
                for index, value in enumerate(fields):
                    if "\x00" in value or any("\udc80" <= char <= "\udcff" for char in value):
                        return f"line {start}, column {name(index)}", f" (value {shown(value)})"
                if len(fields) > len(columns):
                    extra = ",".join(fields[len(columns):])
                    return (f"line {start}, column {len(columns) + 1}",
                            f" (the header has {len(columns)} columns; extra value(s) {extra!r})")
                if len(fields) < len(columns):
                    if len(record) > 1:
                        return unclosed_quote()
                    return f"line {start}, column {name(len(fields))}", f" (line {shown(record[0])})"
                start += len(record)
                record.clear()
        except csv.Error:  # e.g. "field larger than field limit": an open quote swallowed the rest
            return unclosed_quote()
    return None


def _merge_statement(table: Table, columns: list[str]):
    """`MERGE INTO live USING (casts of staging) ... WHEN MATCHED AND IS DISTINCT FROM ... WHEN NOT MATCHED`.

    Unlike `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, which locks (and so writes) every
    conflicting row before its WHERE is read, MERGE touches only the rows it changes.
    """
    from psycopg import sql

    def cast(name: str) -> sql.Composable:
        column = table.column(name)
        value = sql.Identifier(name)
        if name == KEY or column.pg_type != "text":
            value = sql.SQL("btrim({})").format(value)
        if column.pg_type == "date":  # anything but YYYY-MM-DD becomes an invalid date: the MERGE fails
            value = sql.SQL("CASE WHEN {v} ~ {iso} THEN {v} ELSE 'not YYYY-MM-DD: ' || {v} END").format(
                v=value, iso=sql.Literal(ISO_DATE))
        return sql.SQL("NULLIF({}, '')::{} AS {}").format(value, sql.SQL(column.pg_type), sql.Identifier(name))

    def listed(names: list[str], alias: str | None = None) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, n) if alias else sql.Identifier(n) for n in names)

    non_key = [c for c in columns if c != KEY]
    when_matched = sql.SQL(
        "WHEN MATCHED AND ({current}) IS DISTINCT FROM ({staged}) THEN UPDATE SET ({names}) = ROW({staged}) "
    ).format(current=listed(non_key, "live"), staged=listed(non_key, "staged"), names=listed(non_key)) if non_key else sql.SQL("")
    return sql.SQL(
        "MERGE INTO {target} AS live USING (SELECT {casts} FROM {staging}) AS staged ON live.{key} = staged.{key} "
        "{when_matched}WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    ).format(
        target=sql.Identifier(table.name), casts=sql.SQL(", ").join(cast(c) for c in columns),
        staging=sql.Identifier(STAGING), key=sql.Identifier(KEY), when_matched=when_matched,
        names=listed(columns), values=listed(columns, "staged"),
    )


def _cell(name: str, alias: str | None = None):
    """A staged cell as the contract reads it: trimmed, blank as NULL (`NULLIF(btrim(col), '')`)."""
    from psycopg import sql

    column = sql.Identifier(alias, name) if alias else sql.Identifier(name)
    return sql.SQL("NULLIF(btrim({}), '')").format(column)


def _has_duplicate_keys(conn: psycopg.Connection) -> bool:
    """Whether a user_id (trimmed) is on two staged lines.

    The MERGE cannot be trusted to refuse these: `WHEN MATCHED AND ... IS DISTINCT FROM` skips a
    line equal to the stored row, so a second line with the same key would then be applied.
    """
    from psycopg import sql

    trimmed = _cell(KEY)
    return conn.execute(sql.SQL(
        "SELECT EXISTS (SELECT FROM {staging} WHERE {trimmed} IS NOT NULL GROUP BY {trimmed} HAVING count(*) > 1)"
    ).format(staging=sql.Identifier(STAGING), trimmed=trimmed)).fetchone()[0]


def diagnose(conn: psycopg.Connection, table: Table, columns: list[str]) -> list[str]:
    """Every way the staged rows break the contract, each with lines, column and values."""
    from psycopg import sql

    staging, key = sql.Identifier(STAGING), sql.Identifier(KEY)
    trimmed_key = _cell(KEY)
    problems: list[str] = []

    def sampled(query: sql.Composable, params: tuple = ()) -> tuple[int, list[tuple]]:
        rows = conn.execute(sql.SQL("SELECT *, count(*) OVER () FROM ({}) AS found ORDER BY 1 LIMIT {}").format(
            query, sql.Literal(SAMPLE_LIMIT)), params).fetchall()
        return (rows[0][-1] if rows else 0), [row[:-1] for row in rows]

    def describe(rows: list[tuple]) -> str:
        return ", ".join(f"line {line} {value!r}" for line, value in rows)

    count, rows = sampled(sql.SQL("SELECT line_no + 1, coalesce({key}, '') FROM {staging} WHERE {trimmed} IS NULL").format(
        key=key, staging=staging, trimmed=trimmed_key))
    if count:
        problems.append(f'column "{KEY}": {count} blank key(s): {describe(rows)}')
    for name in columns:
        pg_type = table.column(name).pg_type
        if pg_type == "text":
            continue
        value = _cell(name)
        iso = sql.SQL(" OR {} !~ {}").format(value, sql.Literal(ISO_DATE)) if pg_type == "date" else sql.SQL("")
        count, rows = sampled(sql.SQL(
            "SELECT line_no + 1, {column} FROM {staging} WHERE {value} IS NOT NULL"
            " AND (NOT pg_input_is_valid({value}, %s){iso})"
        ).format(column=sql.Identifier(name), staging=staging, value=value, iso=iso), (pg_type,))
        if count:
            kind = f"{pg_type} (YYYY-MM-DD)" if pg_type == "date" else pg_type
            problems.append(f'column "{name}": {count} value(s) that are not a valid {kind}: {describe(rows)}')
    count, rows = sampled(sql.SQL(
        "SELECT min(line_no) + 1, {trimmed}, string_agg((line_no + 1)::text, ', ' ORDER BY line_no) "
        "FROM {staging} WHERE {trimmed} IS NOT NULL GROUP BY {trimmed} HAVING count(*) > 1"
    ).format(trimmed=trimmed_key, staging=staging))
    if count:
        listed = "; ".join(f"{user!r} on lines {lines}" for _, user, lines in rows)
        problems.append(f'column "{KEY}": {count} duplicated user_id(s): {listed}')
    if table.depends_on_users:
        staged_key = _cell(KEY, alias="staged")
        count, rows = sampled(sql.SQL(
            "SELECT line_no + 1, {staged_key} FROM {staging} AS staged WHERE {staged_key} IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM {users} AS known WHERE known.{key} = {staged_key})"
        ).format(staged_key=staged_key, staging=staging, users=sql.Identifier(USERS), key=key))
        if count:
            problems.append(f'column "{KEY}": {count} user_id(s) not in table {USERS}: {describe(rows)}')
    return problems
