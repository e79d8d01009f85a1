"""A month's files before any byte reaches PostgreSQL: are they there, and is each header right."""

from __future__ import annotations

import csv
import hashlib
from typing import TYPE_CHECKING

from streamflow import settings
from streamflow.errors import ContractViolation, MissingInput

if TYPE_CHECKING:
    from pathlib import Path

    from streamflow.registry import Table

COPY_CHUNK_BYTES = 1 << 20


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
        byte = raw[error.start:error.start + 1]
        raise ContractViolation(path, [f"line 1, column {position} ({cell.strip()}): header is not UTF-8 "
                                       f"(byte {byte!r} at offset {error.start})"]) from None
    names = [name.strip() for name in next(csv.reader([text]))]
    problems = []
    known = set(table.column_names)
    for position, name in enumerate(names, start=1):
        if name not in known:
            problems.append(f"line 1, column {position}: unknown column {name!r} "
                            f"(table {table.name} has {', '.join(table.column_names)})")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    problems += [f"line 1: column {name!r} appears {names.count(name)} times" for name in duplicated]
    problems += [f"line 1: required column {name!r} is missing" for name in table.required_columns if name not in names]
    if problems:
        raise ContractViolation(path, problems)
    return names, len(raw)
