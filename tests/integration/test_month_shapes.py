"""Later months that change shape, applied in order, and the snapshot invariant across them.

A third (and fourth) month is built from the real month_001 files: users join, users leave,
subscriptions.csv gains the add_on_* columns, then drops them again.
"""

from __future__ import annotations

import shutil

import pytest

from streamflow import pipeline, snapshots
from streamflow.errors import OutOfOrderMonth
from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow.run import RunMonth
from streamflow_dev.run_month import run_month
from tests.golden import FEBRUARY_CHURNERS, JANUARY_CHURNERS, ROWS
from tests.helpers import live_hashes, rewrite, table_hash

ADD_ONS = ("add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support")


def apply_month(conn, month: str) -> dict:
    """What one DAG run does, without Airflow: load the six tables in order, then stamp."""
    run = RunMonth.named(month, f"test__{month}")
    loaded = run_month(conn, run)["tables"]
    snapshots.stamp(conn, run.as_of)
    conn.commit()
    if {r["status"] for r in loaded.values()} == {"loaded"}:
        assert_snapshot_is_live_state(conn, run.as_of)
    return loaded


def assert_snapshot_is_live_state(conn, as_of: str) -> None:
    """The invariant: right after a month is applied, each snapshot at its as_of equals the live table."""
    from psycopg import sql

    for t in SNAPSHOTTED:
        columns = sql.SQL(", ").join(map(sql.Identifier, ("user_id", *t.snapshot_columns)))
        differences = conn.execute(sql.SQL(
            "SELECT count(*) FROM ((SELECT {cols} FROM {live} EXCEPT SELECT {cols} FROM {snap} WHERE as_of = %(d)s)"
            " UNION ALL (SELECT {cols} FROM {snap} WHERE as_of = %(d)s EXCEPT SELECT {cols} FROM {live})) AS diff"
        ).format(cols=columns, live=sql.Identifier(t.name), snap=sql.Identifier(t.snapshot_table)),
            {"d": as_of}).fetchone()[0]
        assert differences == 0, (t.snapshot_table, as_of)


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
    assert loaded["subscriptions"]["absent_columns"] == []
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
    assert (churners["2024-01-31"], churners["2024-02-29"]) == (JANUARY_CHURNERS, FEBRUARY_CHURNERS)

    # month_003 drops the optional add_on_* columns again: left as they were, the drift in the ledger.
    before = conn.execute("SELECT md5(string_agg(s::text, ',' ORDER BY user_id)) FROM"
                          " (SELECT user_id, add_on_security, add_on_backup, add_on_device_protect, add_on_support"
                          "  FROM subscriptions) AS s").fetchone()
    loaded = apply_month(conn, "month_003")
    assert loaded["subscriptions"]["absent_columns"] == list(ADD_ONS)
    after = conn.execute("SELECT md5(string_agg(s::text, ',' ORDER BY user_id)) FROM"
                         " (SELECT user_id, add_on_security, add_on_backup, add_on_device_protect, add_on_support"
                         "  FROM subscriptions) AS s").fetchone()
    assert after == before
    drift = conn.execute("SELECT absent_columns FROM ingestion_ledger WHERE month = 'month_003'"
                         " AND table_name = 'subscriptions'").fetchone()
    assert drift == (list(ADD_ONS),)


def all_hashes(conn) -> dict[str, str]:
    return {**live_hashes(conn), **{t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}}


def test_an_older_month_replayed_from_its_own_files_changes_nothing(conn, months):
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    before = all_hashes(conn)

    replayed = apply_month(conn, "month_000")  # what a backfill or a UI re-trigger of January does

    assert {r["status"] for r in replayed.values()} == {"replayed"}
    assert {(r["inserted"], r["updated"], r["unchanged"]) for r in replayed.values()} == {(0, 0, ROWS)}
    assert all_hashes(conn) == before  # live tables not rolled back, January's snapshot frozen
    statuses = conn.execute("SELECT status, count(*) FROM ingestion_ledger GROUP BY status ORDER BY status").fetchall()
    assert statuses == [("loaded", 12), ("replayed", 6)]


def test_a_rerun_with_one_file_corrected_stages_and_validates_that_file_only(conn, months, warehouse):
    """The latest month again, labels.csv corrected for one user: the five unchanged files are replays
    (nothing staged, no suite run, nothing applied); labels is staged and validated, its coverage
    reading the live users (users.csv is the file they were loaded from), and publishes one update."""
    from streamflow import staging

    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    (user,) = conn.execute("SELECT user_id FROM labels WHERE NOT churn_label ORDER BY user_id LIMIT 1").fetchone()
    rewrite(months / "month_001" / "labels.csv",
            lambda header, rows: (header, [[r[0], "True"] if r[0] == user else r for r in rows]))
    run_id = "test__corrected"
    run = RunMonth.named("month_001", run_id)
    staged = {t.name: pipeline.stage_table(conn, t.name, run) for t in TABLES}
    url = warehouse.url("postgresql+psycopg", warehouse.database)
    validated = {t.name: pipeline.validate_table(conn, url, t.name, run) for t in TABLES}

    assert {name: s["method"] for name, s in staged.items()} == {
        t.name: "copy" if t.name == "labels" else "replay" for t in TABLES}
    assert {s["rows"] for s in staged.values()} == {ROWS}
    schema = staging.schema_for(run_id)
    assert {t.name: conn.execute(f"SELECT count(*) FROM {schema}.{t.name}").fetchone()[0] for t in TABLES} == {
        t.name: ROWS if t.name == "labels" else 0 for t in TABLES}
    assert {name: bool(v.get("replay")) for name, v in validated.items()} == {
        t.name: t.name != "labels" for t in TABLES}
    recorded = conn.execute("SELECT DISTINCT table_name FROM validation_results WHERE run_id = %s",
                            (run_id,)).fetchall()
    assert recorded == [("labels",)]
    assert all(o["success"] for o in validated["labels"]["outcomes"])
    published = pipeline.publish_month(conn, run)["tables"]
    assert {name: (p["status"], p["updated"]) for name, p in published.items()} == {
        t.name: ("loaded", 1) if t.name == "labels" else ("replayed", 0) for t in TABLES}
    assert conn.execute("SELECT churn_label FROM labels WHERE user_id = %s", (user,)).fetchone() == (True,)


def test_an_older_month_with_other_files_is_refused_and_changes_nothing(conn, months):
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    before = all_hashes(conn)
    rewrite(months / "month_000" / "users.csv", lambda header, rows: (header, rows[:-1]))

    with pytest.raises(OutOfOrderMonth, match=r"refusing to apply as_of 2024-01-31 : month_001 \(as_of 2024-02-29\)"):
        pipeline.stage_table(conn, "users", RunMonth.named("month_000", "test__late"))

    assert all_hashes(conn) == before
    failed = conn.execute("SELECT status, error FROM ingestion_ledger WHERE run_id = 'test__late'").fetchall()
    assert len(failed) == 1
    assert failed[0][0] == "failed"
    assert "make reset" in failed[0][1]


def test_a_month_after_an_unstamped_month_is_refused(conn, months):
    apply_month(conn, "month_000")
    february = RunMonth.named("month_001", "test__february")
    # February published, but its run stopped before stamping (say, a snapshot task failed).
    run_month(conn, february)
    before = all_hashes(conn)

    with pytest.raises(OutOfOrderMonth, match=(
            r"refusing to apply as_of 2024-03-31 : month_001 \(as_of 2024-02-29\) is loaded but not stamped in "
            r"subscriptions_profile_snapshots, usage_agg_30d_snapshots, .*labels_snapshots; "
            r"its run failed or is still running: fix it and re-run month_001 first")):
        pipeline.stage_table(conn, "users", RunMonth.named("month_002", "test__march"))

    assert all_hashes(conn) == before
    snapshots.stamp(conn, february.as_of)  # February's run finishing: now March may come
    conn.commit()
    assert run_month(conn, RunMonth.named("month_002", "test__march"))["tables"]["users"]["status"] == (
        "loaded")


def test_a_skipped_month_is_refused(conn, months):
    apply_month(conn, "month_000")
    before = all_hashes(conn)

    with pytest.raises(OutOfOrderMonth, match=(
            r"the latest loaded month is month_000 \(as_of 2024-01-31\), so the next one is as_of 2024-02-29")):
        pipeline.stage_table(conn, "users", RunMonth.named("month_002", "test__skip"))

    assert all_hashes(conn) == before


def test_stamping_after_a_later_month_freezes_or_refuses(conn, months):
    import psycopg

    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    before = all_hashes(conn)
    conn.execute("DELETE FROM labels_snapshots WHERE as_of = '2024-01-31'")  # as if never stamped:
    conn.execute("DELETE FROM snapshot_stamps WHERE snapshot_table = 'labels_snapshots' AND as_of = '2024-01-31'")

    with pytest.raises(psycopg.errors.RaiseException, match="cannot stamp labels_snapshots at as_of 2024-01-31"):
        snapshots.stamp(conn, "2024-01-31")
    conn.rollback()
    assert snapshots.stamp(conn, "2024-01-31")["usage_agg_30d_snapshots"][2:] == (0, 0, 0, True)  # frozen
    conn.commit()
    assert all_hashes(conn) == before


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


@pytest.mark.parametrize("policy", ["restamp", "immutable"])
def test_corrected_files_for_the_latest_month(conn, months, policy):
    """Re-running the latest month with corrected labels: live always updates; the snapshot per policy."""
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")
    february = snapshot_hashes(conn, "2024-02-29")
    january = snapshot_hashes(conn, "2024-01-31")
    corrected = "3668-QPYBK"

    def flip(header, rows):
        return header, [[r[0], {"True": "False", "False": "True"}[r[1]]] if r[0] == corrected else r for r in rows]

    rewrite(months / "month_001" / "labels.csv", flip)
    run = RunMonth.named("month_001", "test__corrected", policy)
    loaded = run_month(conn, run)["tables"]["labels"]
    stamped = snapshots.stamp(conn, run.as_of, restamp=policy == "restamp")
    conn.commit()

    assert (loaded["updated"], loaded["unchanged"]) == (1, ROWS - 1)
    live = conn.execute("SELECT churn_label FROM labels WHERE user_id = %s", (corrected,)).fetchone()[0]
    frozen = conn.execute("SELECT churn_label FROM labels_snapshots WHERE user_id = %s AND as_of = '2024-02-29'",
                          (corrected,)).fetchone()[0]
    if policy == "restamp":
        assert frozen == live
        assert stamped["labels_snapshots"][2:] == (0, 1, 0, False)  # inserted, updated, dropped, frozen
    else:
        assert frozen != live
        assert snapshot_hashes(conn, "2024-02-29") == february
        assert stamped["labels_snapshots"][2:] == (0, 0, 0, False)
    assert snapshot_hashes(conn, "2024-01-31") == january
    recorded = conn.execute("SELECT snapshot_policy FROM ingestion_ledger WHERE run_id = 'test__corrected'").fetchone()
    assert recorded == (policy,)


@pytest.mark.parametrize("policy", ["restamp", "immutable"])
def test_restamping_updates_inserts_and_drops_exactly_what_differs(conn, months, policy):
    """Each part of a re-stamp: a changed row, a row missing from the snapshot, a user no longer live."""
    apply_month(conn, "month_000")
    as_of = "2024-01-31"
    changed, missing, gone = conn.execute(
        "SELECT user_id FROM labels_snapshots WHERE as_of = %s ORDER BY user_id LIMIT 3", (as_of,)).fetchall()
    conn.execute("UPDATE labels SET churn_label = NOT churn_label WHERE user_id = %s", changed)
    conn.execute("DELETE FROM labels_snapshots WHERE user_id = %s AND as_of = %s", (*missing, as_of))
    conn.execute("DELETE FROM labels WHERE user_id = %s", gone)
    conn.commit()
    before = snapshot_hashes(conn, as_of)["labels_snapshots"]

    stamped = snapshots.stamp(conn, as_of, restamp=policy == "restamp")["labels_snapshots"]
    conn.commit()

    if policy == "restamp":
        assert stamped[2:] == (1, 1, 1, False)  # inserted, updated, dropped, frozen
        assert_snapshot_is_live_state(conn, as_of)
        assert snapshots.stamp(conn, as_of)["labels_snapshots"][2:] == (0, 0, 0, False)  # nothing left to do
    else:
        assert stamped[2:] == (0, 0, 0, False)
        assert snapshot_hashes(conn, as_of)["labels_snapshots"] == before


def test_two_stamps_of_one_table_at_once_both_succeed(conn, months, warehouse):
    """The second waits for the first (advisory lock), then finds its rows: no duplicate-key error."""
    import threading

    from tests.conftest import connect

    run = RunMonth.named("month_000", "test__month_000")
    run_month(conn, run)
    labels = next(t for t in SNAPSHOTTED if t.name == "labels")
    first, *rest = snapshots.render_stamp_sql(labels)
    params = snapshots.stamp_params(labels, run.as_of)
    conn.execute(first, params)  # the first stamp holds the lock, its rows not yet committed
    inserted_by_first = conn.execute(rest[0], params).fetchone()[2]
    second: dict = {}

    def stamp_from_another_session():
        with connect(warehouse) as other:
            second.update(snapshots.stamp(other, run.as_of, (labels,)))
            other.commit()

    waiting = threading.Thread(target=stamp_from_another_session)
    waiting.start()
    waiting.join(timeout=2)
    assert waiting.is_alive()  # blocked on the first stamp's lock
    conn.commit()
    waiting.join(timeout=60)

    assert inserted_by_first == ROWS
    assert second["labels_snapshots"][2:] == (0, 0, 0, False)  # found the first stamp's rows: nothing to do
    assert conn.execute("SELECT count(*) FROM labels_snapshots WHERE as_of = %s", (run.as_of,)).fetchone() == (ROWS,)


def test_a_publish_whose_connection_is_cut_publishes_nothing_and_its_retry_publishes_the_month(conn, months, warehouse):
    """The connection of a publish is terminated inside its transaction (as when PostgreSQL restarts):
    a connection error, not a DataError (so Airflow retries it, fail_fast does not apply); nothing
    of the month is live; the staging is still there, and the retry publishes the whole month."""
    import threading

    import psycopg

    from streamflow.errors import DataError
    from tests.conftest import connect

    apply_month(conn, "month_000")
    before = all_hashes(conn)
    run = RunMonth.named("month_001", "test__cut")
    for t in TABLES:
        pipeline.stage_table(conn, t.name, run)
    caught: list[BaseException] = []

    def publish():
        with connect(warehouse) as publisher:
            try:
                pipeline.publish_month(publisher, run)
            except BaseException as error:  # noqa: BLE001 - what the task would see
                caught.append(error)

    with connect(warehouse, autocommit=True) as holder:  # autocommit: each look at pg_stat_activity is fresh
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (pipeline.PUBLISH_LOCK,))
        publishing = threading.Thread(target=publish)
        publishing.start()
        waiting = None
        for _ in range(200):  # the publish waits on the lock, inside its transaction
            waiting = holder.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'advisory'"
                                     " AND pid <> pg_backend_pid()").fetchone()
            if waiting:
                break
            threading.Event().wait(0.05)
        assert waiting, "the publish never waited on its lock"
        holder.execute("SELECT pg_terminate_backend(%s)", waiting)
        publishing.join(timeout=60)
    [error] = caught
    assert isinstance(error, psycopg.OperationalError)
    assert not isinstance(error, DataError)
    conn.rollback()
    assert all_hashes(conn) == before
    assert conn.execute("SELECT count(*) FROM ingestion_ledger WHERE run_id = 'test__cut'").fetchone() == (0,)

    published = pipeline.publish_month(conn, run)  # the retry

    assert {r["status"] for r in published["tables"].values()} == {"loaded"}
    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM labels").fetchone() == (FEBRUARY_CHURNERS,)
