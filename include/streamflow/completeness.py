"""Is a month folder complete? Its completeness marker, written after the six files, says so.

The marker is `month_NNN/_manifest.json`, written by whoever delivers the month, **after** the six
CSVs are fully copied (`python -m streamflow.completeness data/seeds/month_002` writes it):

    {"format": "streamflow-month-manifest/1", "month": "month_002",
     "files": {"users.csv": {"sha256": "<64 hex>", "rows": 7043, "bytes": 366915}, ...}}

`rows` counts data rows (lines after the header). A scheduled run waits until the marker is there
(`waiting_for`, cheap: no file is read), then `verify` checks every file against it before anything
is staged: a file still being copied, replaced or truncated after the marker was written is
refused, naming the file, the value the marker gives and the one found.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from streamflow.errors import DataError, MissingInput
from streamflow.registry import TABLES

MARKER_NAME = "_manifest.json"
MARKER_FORMAT = "streamflow-month-manifest/1"
_CHUNK_BYTES = 1 << 20


class MissingMarker(MissingInput):
    """A month folder has no completeness marker (its files may still be arriving)."""


class MarkerMismatch(DataError):
    """A month's files are not the files its marker describes."""


def marker_path(folder: Path) -> Path:
    return folder / MARKER_NAME


def describe_file(path: Path) -> dict:
    """sha256, data rows (lines after the header) and size of one file, in one read."""
    digest, newlines, last, size = hashlib.sha256(), 0, b"\n", 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            last, size = chunk[-1:], size + len(chunk)
    lines = newlines + (0 if last == b"\n" else 1)
    return {"sha256": digest.hexdigest(), "rows": max(lines - 1, 0), "bytes": size}


def build_marker(folder: Path) -> dict:
    """The marker of a folder as it is now: every table's file described.

    Raises:
        MissingInput: a file of the month is not there (a marker must not vouch for a partial month).
    """
    missing = [str(folder / t.file_name) for t in TABLES if not (folder / t.file_name).is_file()]
    if missing:
        raise MissingInput(f"{folder}: cannot write its completeness marker, missing: {', '.join(missing)}")
    return {"format": MARKER_FORMAT, "month": folder.name,
            "files": {t.file_name: describe_file(folder / t.file_name) for t in TABLES}}


def write_marker(folder: Path) -> Path:
    """Describe the folder's files and write its marker atomically (a reader never sees half a marker)."""
    marker = build_marker(folder)
    target = marker_path(folder)
    partial = target.with_name(f".{MARKER_NAME}.partial")
    partial.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target


def waiting_for(folder: Path) -> list[str]:
    """What the month still lacks before it can be verified: files, then the marker ([] when complete).

    Cheap (no file is read): the deferred wait calls it on every poll.
    """
    if not folder.is_dir():
        return [f"{folder}/"]
    missing = [str(folder / t.file_name) for t in TABLES if not (folder / t.file_name).is_file()]
    if not marker_path(folder).is_file():
        missing.append(str(marker_path(folder)))
    return missing


def read_marker(folder: Path) -> dict:
    """The marker's content, checked for shape.

    Raises:
        MissingMarker: there is none.
        MarkerMismatch: it is not JSON, or not a manifest of this month in the known format.
    """
    path = marker_path(folder)
    if not path.is_file():
        raise MissingMarker(f"{folder.name}: no completeness marker {path} (written after the six files); "
                            "its files may still be arriving")
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MarkerMismatch(f"{path}: not a JSON manifest ({error})") from None
    if not isinstance(marker, dict):
        raise MarkerMismatch(f"{path}: not a JSON object")
    if marker.get("format") != MARKER_FORMAT or not isinstance(marker.get("files"), dict):
        raise MarkerMismatch(f"{path}: not a {MARKER_FORMAT} manifest (format {marker.get('format')!r})")
    if marker.get("month") != folder.name:
        raise MarkerMismatch(f"{path}: describes month {marker.get('month')!r}, not {folder.name!r}")
    return marker


def verify(folder: Path) -> dict[str, str]:
    """Check every file of the month against its marker; return each file's sha256 by file name.

    Raises:
        MissingMarker: no marker.
        MarkerMismatch: a file's sha256, rows or size differ from the marker's, or the marker lists
            other files than the month's six; every difference is named.
    """
    marker = read_marker(folder)
    path, listed = marker_path(folder), marker["files"]
    expected = {t.file_name for t in TABLES}
    problems = [f"lists {name!r}, which is not a file of a month" for name in sorted(set(listed) - expected)]
    problems += [f"does not list {name!r}" for name in sorted(expected - set(listed))]
    for name in sorted(expected & set(listed)):
        file = folder / name
        if not file.is_file():
            problems.append(f"{file}: listed, but not there")
            continue
        found = describe_file(file)
        for field in ("sha256", "rows", "bytes"):
            if field in listed[name] and listed[name][field] != found[field]:
                problems.append(f"{file}: {field} is {found[field]}, the marker says {listed[name][field]}")
        if "sha256" not in listed[name]:
            problems.append(f"{name}: no sha256 in the marker")
    if problems:
        raise MarkerMismatch(f"{path}: the month's files are not the ones its marker describes, nothing was "
                             "loaded:\n" + "\n".join(f"  - {problem}" for problem in problems))
    return {name: listed[name]["sha256"] for name in sorted(expected)}


def main(argv: list[str] | None = None) -> int:
    """`python -m streamflow.completeness FOLDER...`: write each month folder's marker (after its files)."""
    folders = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not folders:
        print("usage: python -m streamflow.completeness month_folder [...]", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"wrote {write_marker(folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
