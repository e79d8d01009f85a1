"""Later months that change shape, applied in order, and the snapshot invariant across them.

A third (and fourth) month is built from the real month_001 files: users join, users leave,
subscriptions.csv gains the add_on_* columns, then drops them again.
"""

from __future__ import annotations

import csv
import shutil

import pytest

from streamflow import pipeline, snapshots
from streamflow.errors import OutOfOrderMonth
from streamflow.months import month_from_name
from streamflow.registry import SNAPSHOTTED, TABLES
from tests.helpers import live_hashes, table_hash

ROWS = 7043
ADD_ONS = ("add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support")


def apply_month(conn, month: str) -> dict:
    """What one DAG run does, without Airflow: load the six tables in order, then stamp."""
    run = month_from_name(month).as_dict()
    loaded = {t.name: pipeline.load_table(conn, t.name, run, f"test__{month}") for t in TABLES}
    conn.commit()
    snapshots.stamp(conn, run["as_of"])
    conn.commit()
    return loaded


def rewrite(path, transform) -> None:
    """Rewrite a CSV through `transform(header, rows) -> (header, rows)`."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    header, rows = transform(header, rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])


def snapshot_hashes(conn, as_of: str) -> dict[str, str]:
    from psycopg import sql

    return {t.snapshot_table: conn.execute(sql.SQL(
        "SELECT md5(string_agg(s::text, ',' ORDER BY user_id)) FROM {} AS s WHERE as_of = %s").format(
        sql.Identifier(t.snapshot_table)), (as_of,)).fetchone()[0] for t in SNAPSHOTTED}


@pytest.fixture
def months(tmp_path, seeds, monkeypatch):
    """month_000, month_001 (real) and month_002, month_003 (built here) under a tmp seeds dir."""
    for month in ("month_000", "month_001"):
        shutil.copytree(seeds / month, tmp_path / month)
    shutil.copytree(seeds / "month_001", tmp_path / "month_002")
    shutil.copytree(seeds / "month_001", tmp_path / "month_003")
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(tmp_path))
    return tmp_path


def test_shape_changes_keep_every_snapshot_true(conn, months):
    month_002 = months / "month_002"
    leavers = ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK"]
    joiners = ["JOIN-0001", "JOIN-0002"]

    def join_and_leave(header, rows):
        kept = [r for r in rows if r[0] not in leavers]
        templates = [r for r in rows if r[0] not in leavers][:len(joiners)]
        return header, kept + [[user, *template[1:]] for user, template in zip(joiners, templates, strict=True)]

    for t in TABLES:
        rewrite(month_002 / t.file_name, join_and_leave)

    def add_add_ons(header, rows):
        return header + list(ADD_ONS), [r + ["True", "False", "true", "0"] for r in rows]

    rewrite(month_002 / "subscriptions.csv", add_add_ons)

    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    january, february = snapshot_hashes(conn, "2024-01-31"), snapshot_hashes(conn, "2024-02-29")

    loaded = apply_month(conn, "month_002")

    assert loaded["users"]["inserted"] == len(joiners)
    assert {r["inserted"] for r in loaded.values()} == {len(joiners)}
    assert loaded["subscriptions"]["updated"] == ROWS - len(leavers)  # the add_on_* values arrived
    assert loaded["subscriptions"]["absent_columns"] == ()
    # Leavers keep their last known state: files are extracts, not deletions.
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (ROWS + len(joiners),)
    assert conn.execute("SELECT count(*) FROM labels_snapshots WHERE as_of = '2024-03-31'").fetchone() == (
        ROWS + len(joiners),)
    assert conn.execute(
        "SELECT add_on_security, add_on_backup, add_on_device_protect, add_on_support FROM subscriptions"
        " WHERE user_id = 'JOIN-0001'").fetchone() == (True, False, True, False)
    # Earlier snapshots are untouched, and training sets as of them read their own labels.
    assert snapshot_hashes(conn, "2024-01-31") == january
    assert snapshot_hashes(conn, "2024-02-29") == february
    churners = dict(conn.execute(
        "SELECT as_of::text, count(*) FILTER (WHERE churn_label) FROM labels_snapshots GROUP BY as_of").fetchall())
    assert (churners["2024-01-31"], churners["2024-02-29"]) == (1869, 1701)

    # month_003 drops the optional add_on_* columns again: left as they were, the drift in the ledger.
    before = conn.execute("SELECT md5(string_agg(s::text, ',' ORDER BY user_id)) FROM"
                          " (SELECT user_id, add_on_security, add_on_backup, add_on_device_protect, add_on_support"
                          "  FROM subscriptions) AS s").fetchone()
    loaded = apply_month(conn, "month_003")
    assert loaded["subscriptions"]["absent_columns"] == ADD_ONS
    after = conn.execute("SELECT md5(string_agg(s::text, ',' ORDER BY user_id)) FROM"
                         " (SELECT user_id, add_on_security, add_on_backup, add_on_device_protect, add_on_support"
                         "  FROM subscriptions) AS s").fetchone()
    assert after == before
    drift = conn.execute("SELECT absent_columns FROM ingestion_ledger WHERE month = 'month_003'"
                         " AND table_name = 'subscriptions'").fetchone()
    assert drift == (list(ADD_ONS),)


def test_an_older_month_is_refused_and_changes_nothing(conn, months):
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    before = {**live_hashes(conn), **{t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}}

    with pytest.raises(OutOfOrderMonth, match=r"refusing to apply as_of 2024-01-31 : month_001 \(as_of 2024-02-29\)"):
        pipeline.load_table(conn, "users", month_from_name("month_000").as_dict(), "test__late")
    conn.rollback()
    with pytest.raises(Exception, match="refusing to apply as_of 2024-01-31"):
        snapshots.stamp(conn, "2024-01-31")
    conn.rollback()

    after = {**live_hashes(conn), **{t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}}
    assert after == before
    failed = conn.execute("SELECT status, error FROM ingestion_ledger WHERE run_id = 'test__late'").fetchall()
    assert len(failed) == 1
    assert failed[0][0] == "failed"
    assert "make reset" in failed[0][1]


def test_ledger_records_every_load(conn, months, seeds):
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    import hashlib

    rows = conn.execute(
        "SELECT month, table_name, file_sha256, rows_in_file, inserted, updated, unchanged, status"
        " FROM ingestion_ledger ORDER BY id").fetchall()
    assert len(rows) == 12
    for month, table_name, sha256, rows_in_file, inserted, updated, unchanged, status in rows:
        assert sha256 == hashlib.sha256((seeds / month / f"{table_name}.csv").read_bytes()).hexdigest()
        assert (rows_in_file, inserted + updated + unchanged, status) == (ROWS, ROWS, "loaded")
    labels_001 = [r for r in rows if r[:2] == ("month_001", "labels")][0]
    assert labels_001[4:7] == (0, 2652, ROWS - 2652)
