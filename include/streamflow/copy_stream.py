"""Stream a CSV's body into a table with `COPY ... FROM STDIN`, and turn COPY's errors into file terms."""

from __future__ import annotations

import csv
import hashlib
import re
from typing import TYPE_CHECKING

from streamflow.errors import ContractViolation
from streamflow.header import COPY_CHUNK_BYTES

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

# SQLSTATE classes of an error the data (not the server or the connection) caused.
DATA_SQLSTATE_CLASSES = ("22", "23", "21")


def is_data_error(error: Exception) -> bool:
    """Whether a psycopg error is the data's fault (a bad value, a duplicate key), not the server's."""
    return (getattr(error, "sqlstate", None) or "").startswith(DATA_SQLSTATE_CLASSES)


# A line holding only \. : PostgreSQL before 18 takes it for the end of a CSV COPY's data and drops
# the rest of the file without an error. Matched with the line end before it (and after it, but for
# the last line): four bytes at most, so a window that carries three bytes over misses none.
LONE_END_MARKER = re.compile(rb"[\r\n]\\\.[\r\n]")
LONE_END_MARKER_LAST_LINE = re.compile(rb"[\r\n]\\\.\Z")


def stream_body(conn: psycopg.Connection, path: Path, header_bytes: int, target, columns: list[str],
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
                # `in` first: 5x faster on a clean chunk
                if b"\\." in window and (found := LONE_END_MARKER.search(window)):
                    raise refuse(complete_lines + window.count(b"\n", 0, found.start() + 1) - carry.count(b"\n") + 1)
                complete_lines += chunk.count(b"\n")
                carry = window[-3:]
                digest.update(chunk)
                stream.write(chunk)
            if LONE_END_MARKER_LAST_LINE.search(carry):
                raise refuse(complete_lines + 1)
        return digest.hexdigest(), cursor.rowcount


def copy_problem(error: Exception, path: Path, columns: list[str]) -> str:
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
