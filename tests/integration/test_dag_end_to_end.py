"""Both real months through the whole DAG (`airflow dags test`), then re-runs and out-of-order runs."""

from __future__ import annotations

import pytest

from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow_dev import checks
from tests.golden import CHURNERS, FEBRUARY_CHURNERS, JANUARY_CHURNERS, ROWS
from tests.helpers import live_hashes, rewrite_marker, table_hash

pytestmark = pytest.mark.airflow



def snapshot_hashes(conn) -> dict[str, str]:
    return {t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}


def assert_succeeded(result):
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "failed" not in _final_states(result), result.stdout[-4000:]


def _final_states(result) -> str:
    return result.stdout[-2000:].lower()


def test_both_months_then_reruns(run_dag, conn):
    assert_succeeded(run_dag("month_000"))
    assert_succeeded(run_dag("month_001"))

    found = checks.collect(conn)
    assert found["live"] == {t.name: ROWS for t in TABLES}
    assert found["snapshots"] == {t.snapshot_table: {"2024-01-31": ROWS, "2024-02-29": ROWS} for t in SNAPSHOTTED}
    assert found["as_of"] == ["2024-01-31", "2024-02-29"]
    assert found["churners"] == CHURNERS
    assert found["subscriptions_plan_stream_tv_null"] == 1526
    assert conn.execute("SELECT count(*) FROM subscriptions WHERE add_on_security IS NOT NULL").fetchone()[0] == 0
    passed = conn.execute("SELECT count(*) FILTER (WHERE success), count(*) FROM validation_results").fetchone()
    assert passed[0] == passed[1] > 0
    # The point-in-time view reads January's labels even though February is in.
    january = conn.execute("SELECT count(*), count(*) FILTER (WHERE churn_label), count(watch_hours_30d)"
                           " FROM training_set('2024-01-31')").fetchone()
    assert january == (ROWS, JANUARY_CHURNERS, ROWS)
    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM training_set('2024-02-29')").fetchone() == (FEBRUARY_CHURNERS,)

    # The latest month again, same files: nothing changes anywhere.
    before = {**live_hashes(conn), **snapshot_hashes(conn)}
    assert_succeeded(run_dag("month_001"))
    assert {**live_hashes(conn), **snapshot_hashes(conn)} == before
    latest = conn.execute(
        "SELECT sum(inserted), sum(updated), sum(unchanged) FROM ingestion_ledger WHERE id IN "
        "(SELECT max(id) FROM ingestion_ledger GROUP BY table_name)").fetchone()
    assert latest == (0, 0, ROWS * len(TABLES))
    statuses = conn.execute("SELECT DISTINCT status FROM ingestion_ledger WHERE id IN "
                            "(SELECT max(id) FROM ingestion_ledger GROUP BY table_name)").fetchall()
    assert statuses == [("replayed",)]  # the files it was loaded from: read and hashed, not re-applied

    # An older month after a newer one, from the files it was loaded from: a replay, nothing touched.
    assert_succeeded(run_dag("month_000"))
    assert {**live_hashes(conn), **snapshot_hashes(conn)} == before
    replayed = conn.execute("SELECT count(*) FROM ingestion_ledger WHERE status = 'replayed'").fetchone()
    assert replayed == (2 * len(TABLES),)


def test_an_older_month_with_other_files_is_refused(run_dag, conn, seeds, tmp_path):
    import shutil

    for month in ("month_000", "month_001"):
        shutil.copytree(seeds / month, tmp_path / month)
    assert_succeeded(run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    assert_succeeded(run_dag("month_001", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    before = {**live_hashes(conn), **snapshot_hashes(conn)}
    labels = tmp_path / "month_000" / "labels.csv"
    labels.write_text(labels.read_text().replace(",True\n", ",False\n", 1))
    rewrite_marker(labels.parent)

    refused = run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert refused.returncode != 0
    assert "refusing to apply as_of 2024-01-31 : month_001 (as_of 2024-02-29)" in refused.stdout + refused.stderr
    assert {**live_hashes(conn), **snapshot_hashes(conn)} == before


def test_a_bad_month_fails_validation_and_stamps_nothing(run_dag, conn, seeds, tmp_path):
    """month_001 with negative watch hours for three users: validation fails, no 2024-02-29 snapshot."""
    import shutil

    for month in ("month_000", "month_001"):
        shutil.copytree(seeds / month, tmp_path / month)
    usage = tmp_path / "month_001" / "usage_agg_30d.csv"
    lines = usage.read_text().splitlines(keepends=True)
    broken_users = []
    for index in (10, 20, 30):
        fields = lines[index].split(",")
        fields[1] = "-" + fields[1]  # watch_hours_30d
        broken_users.append(fields[0])
        lines[index] = ",".join(fields)
    usage.write_text("".join(lines))
    rewrite_marker(usage.parent)

    assert_succeeded(run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    january, live = snapshot_hashes(conn), live_hashes(conn)
    conn.commit()
    failed = run_dag("month_001", STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert failed.returncode != 0
    log = failed.stdout + failed.stderr
    assert "FAILED usage_agg_30d.watch_hours_30d: expect_column_values_to_be_between" in log
    assert f"unexpected: 3 of {ROWS} rows" in log
    for user in broken_users:
        assert user in log
    found = checks.collect(conn)
    assert found["as_of"] == ["2024-01-31"]  # nothing stamped for 2024-02-29
    assert snapshot_hashes(conn) == january
    assert live_hashes(conn) == live  # nothing of month_001 was published: the live tables hold January
    stored = conn.execute(
        "SELECT as_of::text, column_name, unexpected_count FROM validation_results WHERE NOT success").fetchall()
    assert stored == [("2024-02-29", "watch_hours_30d", 3)]
    kept = conn.execute("SELECT user_id FROM validation_failing_keys ORDER BY user_id").fetchall()
    assert kept == sorted((user,) for user in broken_users)
    conn.commit()

    # The file corrected, the month again: published whole, stamped, staging gone but the failed run's.
    shutil.copy(seeds / "month_001" / "usage_agg_30d.csv", usage)
    rewrite_marker(usage.parent)
    assert_succeeded(run_dag("month_001", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    assert checks.collect(conn)["as_of"] == ["2024-01-31", "2024-02-29"]
    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM labels").fetchone() == (FEBRUARY_CHURNERS,)
    assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone() == (1,)


def test_a_manual_month_without_its_marker_fails_at_once_and_the_override_loads_it(run_dag, conn, seeds, tmp_path):
    import shutil

    from streamflow.completeness import MARKER_NAME

    shutil.copytree(seeds / "month_000", tmp_path / "month_000")
    (tmp_path / "month_000" / MARKER_NAME).unlink()

    refused = run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert refused.returncode != 0
    log = refused.stdout + refused.stderr
    assert f"month_000 is not complete, missing: {tmp_path / 'month_000' / MARKER_NAME}" in log
    assert '"require_marker": false' in log  # the way out is named
    assert conn.execute("SELECT count(*) FROM ingestion_ledger").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    conn.commit()  # its locks would hold back the run's DDL

    loaded = run_dag("month_000", {"require_marker": False}, STREAMFLOW_SEEDS_DIR=str(tmp_path))
    assert_succeeded(loaded)
    assert "month_000: loading WITHOUT checking its completeness marker" in loaded.stdout + loaded.stderr
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (ROWS,)


def test_a_file_that_differs_from_its_marker_is_refused_and_nothing_is_staged(run_dag, conn, seeds, tmp_path):
    import shutil

    from streamflow.completeness import describe_file

    shutil.copytree(seeds / "month_000", tmp_path / "month_000")
    labels = tmp_path / "month_000" / "labels.csv"
    labels.write_bytes(labels.read_bytes()[:-200])  # cut short after the marker was written: a copy not finished

    refused = run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert refused.returncode != 0
    log = refused.stdout + refused.stderr
    assert "the month's files are not the ones its marker describes, nothing was loaded" in log
    assert f"{labels}: sha256 is " in log
    assert f"{labels}: rows is {describe_file(labels)['rows']}, the marker says {ROWS}" in log
    assert conn.execute("SELECT count(*) FROM ingestion_ledger").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone() == (0,)
    assert {t.name: conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES} == {
        t.name: 0 for t in TABLES}
