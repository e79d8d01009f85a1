"""Months refused through the whole DAG (`airflow dags test`, a run of its own per call), then let in.

Two scenarios of tests/months.py (built by it, their outcomes read from it): a month failing
validation (the live and snapshot tables byte-identical after it, then the file corrected and the
month published) and a month without its marker (refused at once, then loaded by the override). `airflow dags test` is the harness for them because each wants a warehouse of its own
and runs after which the test changes the files: the running deployment of tests/integration/stack/
holds one warehouse that its tests build on.

The real months' loads and re-runs, an older month's replay and its refusal from other files are
proved by that deployment (its catch-up, backfill and REST triggers), a month whose marker does not
match its files by tests/integration/waiting/ (the marker ending a scheduled run's wait); they were
tests here too, on the same months with the same outcomes.
"""

from __future__ import annotations

import pytest

from streamflow.registry import SNAPSHOTTED
from streamflow_dev import checks
from tests.golden import ROWS
from tests.helpers import live_hashes, rewrite_marker, table_hash
from tests.months import MONTHS

pytestmark = pytest.mark.airflow


def snapshot_hashes(conn) -> dict[str, str]:
    return {t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}


def assert_succeeded(result):
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "failed" not in _final_states(result), result.stdout[-4000:]


def _final_states(result) -> str:
    return result.stdout[-2000:].lower()


def test_a_bad_month_fails_validation_and_stamps_nothing(run_dag, conn, seeds, tmp_path):
    """month_001 = scenario negative_watch_hours (three users): validation fails, no 2024-02-29 snapshot."""
    import shutil

    scenario = MONTHS["negative_watch_hours"]
    MONTHS["january"].build(seeds, tmp_path / "month_000")
    broken_users = scenario.build(seeds, tmp_path / "month_001")
    usage = tmp_path / "month_001" / "usage_agg_30d.csv"

    assert_succeeded(run_dag("month_000", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    january, live = snapshot_hashes(conn), live_hashes(conn)
    conn.commit()
    failed = run_dag("month_001", STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert (failed.returncode == 0) == scenario.publishes
    log = failed.stdout + failed.stderr
    for line in scenario.log(usage.parent):
        assert line in log
    for user in broken_users:
        assert user in log
    found = checks.collect(conn)
    assert found["as_of"] == ["2024-01-31"]  # nothing stamped for 2024-02-29
    assert snapshot_hashes(conn) == january
    assert live_hashes(conn) == live  # nothing of month_001 was published: the live tables hold January
    stored = conn.execute(
        "SELECT as_of::text, column_name, unexpected_count FROM validation_results WHERE NOT success").fetchall()
    assert stored == [("2024-02-29", column, n) for column, n in scenario.failures]
    kept = conn.execute("SELECT user_id FROM validation_failing_keys ORDER BY user_id").fetchall()
    assert kept == sorted((user,) for user in broken_users)
    conn.commit()

    # The file corrected, the month again: published whole, stamped, staging gone but the failed run's.
    shutil.copy(seeds / scenario.source / "usage_agg_30d.csv", usage)
    rewrite_marker(usage.parent)
    assert_succeeded(run_dag("month_001", STREAMFLOW_SEEDS_DIR=str(tmp_path)))
    assert checks.collect(conn)["as_of"] == ["2024-01-31", "2024-02-29"]
    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM labels").fetchone() == (
        MONTHS["february"].churners,)
    assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'streamflow_stage_%'").fetchone() == (1,)


def test_a_manual_month_without_its_marker_fails_at_once_and_the_override_loads_it(run_dag, conn, seeds, tmp_path):
    scenario = MONTHS["without_marker"]
    folder = tmp_path / scenario.source
    scenario.build(seeds, folder)

    refused = run_dag(folder.name, STREAMFLOW_SEEDS_DIR=str(tmp_path))

    assert (refused.returncode == 0) == scenario.publishes
    log = refused.stdout + refused.stderr
    for line in scenario.log(folder):  # what is missing, and the way out
        assert line in log
    assert conn.execute("SELECT count(*) FROM ingestion_ledger").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    conn.commit()  # its locks would hold back the run's DDL

    loaded = run_dag(folder.name, scenario.way_out, STREAMFLOW_SEEDS_DIR=str(tmp_path))
    assert_succeeded(loaded)
    assert scenario.way_out_log(folder) in loaded.stdout + loaded.stderr
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (ROWS,)
