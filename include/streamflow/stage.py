"""Write: stream one month's CSV into the run's staging area, through the contract gate.

The live tables are not touched here (the publish step applies the whole month at once).

1. The header is checked against the registry (`streamflow.header`).
2. The file is `COPY`'d straight into a typed UNLOGGED staging table keyed by user_id: the
   floor of what PostgreSQL can load. Kept only where the result is what step 3 would give
   (dates written YYYY-MM-DD, keys not padded, every user known); anything else rolls back to a
   savepoint and step 3 decides, so a bad file gets one and the same diagnosis.
3. The checked path (`streamflow.checked_copy`): the body is streamed as text into a TEMP table
   (with the line number), then cast into the staging table. A row that breaks the contract (bad
   type, a date not YYYY-MM-DD, blank, padded or duplicated key, a user neither live nor staged for
   the month) is described, every offending line of it (`streamflow.diagnosis`), and nothing is staged.

Optional columns the file does not carry are filled from the live rows (`streamflow.staged_table`),
so that validation sees each row as the publish will leave it.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from streamflow import checked_copy, staged_table, staging
from streamflow.copy_stream import is_data_error, stream_body
from streamflow.diagnosis import ISO_DATE, PADDING, trimmed, unknown_user_filter
from streamflow.errors import NotStaged
from streamflow.header import read_header
from streamflow.registry import KEY, USERS, Table

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)

# For this transaction only: the key index build and the unknown-user check stay in memory.
WORK_MEM = "256MB"
#: The staging method of a file already loaded for its month, byte for byte.
REPLAY = "replay"


@dataclass(frozen=True)
class StagedFile:
    """What one stage task staged, small enough for XCom and the staging manifest."""

    table: str
    file: str
    sha256: str
    rows: int
    columns: tuple[str, ...]
    absent_columns: tuple[str, ...]  # optional table columns the file did not carry (left as they are live)
    method: str  # "copy": typed COPY straight in; "checked": staged as text, then cast; "replay": nothing staged

    def as_dict(self) -> dict:
        return asdict(self)


def absent_columns(table: Table, columns: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The table's columns a file does not carry."""
    return tuple(c for c in table.column_names if c not in columns)


def stage_file(conn: psycopg.Connection, schema: str, table: Table, path: Path, month: str = "",
               run_id: str = "") -> StagedFile:
    """Stage one CSV as the typed table `schema.<table>` and record it in the manifest.

    Args:
        conn: a psycopg 3 connection not inside a transaction (e.g. `PostgresHook.get_conn()`).
        schema: the run's staging schema (`staging.schema_for(run_id)`); created if missing.
        table: the registry entry of the target table.
        path: the month's CSV for that table.

    Raises:
        MissingInput: the file is not there.
        ContractViolation: header, encoding, types, keys or users do not match; nothing staged.
        NotStaged: a dependent table whose run's staged users were emptied by a crash.
    """
    columns, header_bytes = read_header(path, table)
    target = staging.table_in(schema, table.name)
    with conn.transaction():  # a re-run starts from nothing, even if this attempt is refused
        staging.ensure(conn, schema)
        staging.forget(conn, schema, table.name)
        staged_users = None
        if table.depends_on_users and staging.exists(conn, schema, USERS):
            # Without its users, the month's new users would be refused as unknown: blaming the file.
            if not staging.is_staged(conn, schema, USERS):
                raise NotStaged(f"{schema}.{USERS} is empty ({staging.LOST}): clear the run's stage tasks "
                                "(or the whole run) so they stage the month again")
            staged_users = staging.table_in(schema, USERS)
    with conn.transaction():
        conn.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))
        staged_table.create(conn, table, target)
        copied = _copy_typed(conn, table, path, header_bytes, columns, target, staged_users)
        method = "copy"
        if copied is None:
            copied = checked_copy.stage_as_text(conn, table, path, header_bytes, columns, target, staged_users)
            method = "checked"
        sha256, rows = copied
        absent = absent_columns(table, columns)
        if absent:
            staged_table.fill_from_live(conn, table, target, absent)
        result = StagedFile(table=table.name, file=str(path), sha256=sha256, rows=rows, columns=tuple(columns),
                            absent_columns=absent, method=method)
        _record(conn, schema, result, month, run_id)
    log.info("staged %s from %s into %s (%s): %d rows%s", table.name, path, schema, method, rows,
             f"; columns absent from the file, left as they are live: {', '.join(absent)}" if absent else "")
    return result


def stage_replay(conn: psycopg.Connection, schema: str, table: Table, path: Path, loaded: dict, month: str = "",
                 run_id: str = "") -> StagedFile:
    """Record a file that is byte for byte the one its month was last loaded from (`loaded`: that
    ledger row): nothing is written again, the publish applies nothing and validation has nothing
    new to check. Its staged table is left empty, so that the other tables' coverage checks read
    the live rows, which are this file's."""
    columns, _ = read_header(path, table)
    target = staging.table_in(schema, table.name)
    with conn.transaction():
        staging.ensure(conn, schema)
        staging.forget(conn, schema, table.name)
        staged_table.create(conn, table, target)
        staged_table.add_key(conn, target)
        result = StagedFile(table=table.name, file=str(path), sha256=loaded["file_sha256"],
                            rows=loaded["rows_in_file"], columns=tuple(columns),
                            absent_columns=tuple(loaded["absent_columns"] or ()), method=REPLAY)
        _record(conn, schema, result, month, run_id)
    log.info("%s: %s is the file %s was loaded from (sha256 %s): a replay, nothing staged", table.name, path,
             month, result.sha256[:12])
    return result


def _record(conn: psycopg.Connection, schema: str, staged: StagedFile, month: str, run_id: str) -> None:
    """The staged file's row in the run's manifest."""
    staging.record(conn, schema, {"table_name": staged.table, "month": month, "run_id": run_id,
                                  "file_path": staged.file, "file_sha256": staged.sha256, "rows_in_file": staged.rows,
                                  "columns": list(staged.columns), "absent_columns": list(staged.absent_columns),
                                  "method": staged.method})


class _NotEquivalent(Exception):
    """The typed COPY would not give what the checked path gives: roll it back."""


def _copy_typed(conn: psycopg.Connection, table: Table, path: Path, header_bytes: int, columns: list[str],
                target: sql.Identifier, staged_users: sql.Identifier | None) -> tuple[str, int] | None:
    """`COPY` the file straight into the typed staging table; None where it cannot decide.

    The typed COPY reads each cell as the checked path's casts do (input functions ignore the
    ASCII whitespace the contract trims and refuse a no-break space, which sends the file to the
    checked path; FORCE_NULL makes a blank cell NULL, quoted or not), and the
    staging table's primary key refuses blank and duplicated user_ids. What it would read
    differently is checked on the side: a date not written YYYY-MM-DD (PostgreSQL also reads
    "05/02/2022"), by a scan of the file that runs while the COPY streams; a padded user_id and
    an unknown user, after it. Any error or doubt rolls back to the savepoint and the checked
    path runs, so a bad file gets exactly the same diagnosis (a padded user_id: refused there).
    """
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from psycopg import sql

    key = sql.Identifier(KEY)
    dates = [index for index, name in enumerate(columns) if table.column(name).pg_type == "date"]
    doubtful = sql.SQL("{key} <> {trimmed}").format(key=key, trimmed=trimmed(key))
    if table.depends_on_users:
        unknown = unknown_user_filter(sql.Identifier("staged", KEY), staged_users)
        doubtful = sql.SQL("{} OR {}").format(doubtful, unknown)
    try:
        # The savepoint is what a refused COPY rolls back to, leaving the staging table empty.
        with ThreadPoolExecutor(max_workers=1) if dates else contextlib.nullcontext() as side, conn.transaction():
            iso_rows = side.submit(_rows_if_dates_are_iso, path, len(columns), dates) if dates else None
            sha256, rows = stream_body(conn, path, header_bytes, target, columns, force_null=True)
            if rows == 0 or (iso_rows is not None and iso_rows.result() != rows):
                raise _NotEquivalent  # empty, a date not YYYY-MM-DD, or a file csv reads otherwise
            staged_table.add_key(conn, target)
            if conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {} AS staged WHERE {})").format(
                    target, doubtful)).fetchone()[0]:
                raise _NotEquivalent
    except _NotEquivalent:
        return None
    except psycopg.Error as error:
        if not is_data_error(error):
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
                    cell = record[index].strip(PADDING)
                    if cell and not iso.fullmatch(cell):  # not match: Python's $ also matches before a final newline
                        return None
    except (UnicodeDecodeError, csv.Error):
        return None
    return rows
