"""The Feast repo (feature_repo/) on the real months: `make feast-check` and its check in .venv-feast.

Both months are loaded, stamped and built once, with the pipeline's own functions (as in
test_training_set.py), into a template database; each test runs on a copy of it. The Feast venv comes
from `make feast-venv` (a no-op when it is in; on a clean clone, CI's, it is built here: ~1 minute).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from streamflow import training
from streamflow.registry import SNAPSHOTTED
from streamflow.run import RunMonth
from streamflow_dev import feast
from streamflow_dev.run_month import run_month
from tests.conftest import ROOT, connect, drop_database, fresh_warehouse
from tests.golden import CHURNERS, ROWS

MONTH_ENDS = ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z"]
MID_MONTH = "2024-02-15T12:00:00Z (mid-month)"  # the check's default: the 15th, 12:00 UTC, of the latest month
CHECK_TIMEOUT_S = 600
NUMERIC_SNAPSHOT_COLUMNS = {name for source in SNAPSHOTTED for name in source.snapshot_columns
                            if source.column(name).pg_type == "numeric"}


@pytest.fixture(scope="module")
def feast_venv():
    """.venv-feast, made by the make target when missing (what `make feast-check` depends on)."""
    made = subprocess.run(["make", "--no-print-directory", "feast-venv"], cwd=ROOT, capture_output=True, text=True,
                          timeout=CHECK_TIMEOUT_S)
    assert made.returncode == 0, f"make feast-venv: {made.returncode}\n{made.stdout[-3000:]}\n{made.stderr[-3000:]}"


@pytest.fixture(scope="module")
def both_months(pg_server):
    """A database holding both real months, stamped, with their training sets built: each test's template."""
    with fresh_warehouse(pg_server, "feast_template_") as settings:
        with connect(settings) as conn:  # closed before the copies: CREATE DATABASE ... TEMPLATE wants no session
            for month_name in ("month_000", "month_001"):
                month = RunMonth.named(month_name, f"test__{month_name}")
                run_month(conn, month, stamp=True)
                training.build(conn, month.as_of, f"test__{month_name}")
        yield settings


@pytest.fixture
def months(pg_server, both_months):
    """A copy of the template for one test (CREATE DATABASE ... TEMPLATE); its settings."""
    name = f"feast_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(both_months.database)))
    yield dataclasses.replace(pg_server, database=name)
    drop_database(pg_server, name)


def manifest_md5s(settings) -> dict[str, str]:
    """The content md5 of each as_of's latest build, read here, not by the check."""
    with connect(settings) as conn:
        return dict(conn.execute("SELECT DISTINCT ON (as_of) as_of::text, content_md5 FROM training_set_manifest"
                                 " ORDER BY as_of, id DESC").fetchall())


def run_check(settings, tmp_path, *args: str, repo=feast.FEATURE_REPO, **extra: str):
    """The check in .venv-feast on `settings`' database; (the process, its JSON report by request)."""
    env = feast.feast_environment(settings, "disable", tmp_path / "feast-state", repo=repo, **extra)
    report = tmp_path / "report.json"
    result = feast.run_check(env, "--report", str(report), *args, capture=True)
    by_request = {entry["request"]: entry for entry in json.loads(report.read_text())} if report.exists() else {}
    return result, by_request


def assert_serves_the_training_sets(result, report: dict, md5s: dict[str, str], mid_month: str = MID_MONTH) -> None:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert list(report) == [*MONTH_ENDS, mid_month, "online"]
    expected = dict(zip(report, ["2024-01-31", "2024-02-29", "2024-01-31", "2024-02-29"], strict=True))
    for request, entry in report.items():
        as_of = expected[request]
        assert (entry["expected_as_of"], entry["rows"], entry["churners"], entry["md5"], entry["problems"]) == (
            as_of, ROWS, CHURNERS[as_of], md5s[as_of], []), request
        assert entry["served_as_ofs"] == {as_of: ROWS}, request  # mid-month: every row from January
    assert "feast-check: OK" in result.stdout


def test_make_feast_check_serves_both_training_sets_and_january_in_mid_february(months, feast_venv, tmp_path):
    """`make feast-check` as typed, on a warehouse with both months: .env's settings (sslmode among them)."""
    report = tmp_path / "report.json"
    environ = {**os.environ, "POSTGRES_HOST": months.host, "POSTGRES_PORT": str(months.port),
               "POSTGRES_USER": months.user, "POSTGRES_PASSWORD": months.password, "POSTGRES_DB": months.database,
               "STREAMFLOW_FEAST_DIR": str(tmp_path / "feast-state")}
    result = subprocess.run(["make", "--no-print-directory", "feast-check", f"ARGS=--report {report}"], cwd=ROOT,
                            env=environ, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    md5s = manifest_md5s(months)
    assert md5s["2024-01-31"] != md5s["2024-02-29"]  # so that mid-February matching January means something
    assert_serves_the_training_sets(result, {e["request"]: e for e in json.loads(report.read_text())}, md5s)
    assert "leak-free, nothing from 2024-02-29" in result.stdout
    assert (tmp_path / "feast-state" / "online_store.db").is_file()


@pytest.mark.parametrize(("how", "zone"), [("PGTZ", "Pacific/Kiritimati"), ("ALTER DATABASE", "Pacific/Pago_Pago")],
                         ids=["utc+14-session", "utc-11-database-default"])
def test_the_session_time_zone_changes_nothing(months, feast_venv, tmp_path, how, zone):
    """UTC+14 from the client (PGTZ, what `options=-c TimeZone=...` does) and UTC-11 as the database's own
    default: every as_of compares at 00:00 UTC, so both serve the rows a UTC session gets. The mid-month
    time is midnight UTC here: 14:00 on the 15th in Kiritimati, 13:00 on the 14th in Pago Pago."""
    extra = {}
    if how == "PGTZ":
        extra["PGTZ"] = zone
    else:
        with connect(months, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
                sql.Identifier(months.database), sql.Literal(zone)))
    result, report = run_check(months, tmp_path, "--mid-month", "2024-02-15T00:00:00+00:00", **extra)
    assert f"session time zone {zone}" in result.stdout  # the setting did reach Feast's sessions
    assert_serves_the_training_sets(result, report, manifest_md5s(months), mid_month="2024-02-15T00:00:00Z (mid-month)")


def test_a_role_that_may_only_read_is_enough(months, feast_venv, tmp_path):
    """The entity rows go in as SQL (embed_query): Feast creates nothing in the warehouse, so SELECT (and the
    TEMP every role has, for the check's own comparison table) is all the role needs."""
    reader = dataclasses.replace(months, user=f"feast_reader_{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex)
    with connect(months, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(reader.user), sql.Literal(reader.password)))
        try:
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(reader.user)))
            with connect(reader) as as_reader, pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_reader.execute("CREATE TABLE may_not_create (x int)")
            result, report = run_check(reader, tmp_path)
            assert_serves_the_training_sets(result, report, manifest_md5s(months))
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader.user)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader.user)))


def test_a_snapshot_changed_after_its_training_set_was_built_fails_the_check(months, feast_venv, tmp_path):
    """Feast reads the snapshots, training_examples is what was built from them: one changed value is a
    difference at January's month end and mid-February (both read January), named by user and column."""
    with connect(months) as conn:
        user, fee = conn.execute("UPDATE subscriptions_profile_snapshots SET monthly_fee = monthly_fee + 0.01"
                                 " WHERE as_of = '2024-01-31' AND user_id = (SELECT min(user_id) FROM"
                                 " subscriptions_profile_snapshots WHERE as_of = '2024-01-31')"
                                 " RETURNING user_id, monthly_fee::text").fetchone()
        conn.commit()
    result, report = run_check(months, tmp_path)
    assert result.returncode == 1
    failed = {request for request, entry in report.items() if entry["problems"]}
    assert failed == {MONTH_ENDS[0], MID_MONTH}
    for request in failed:
        problems = report[request]["problems"]
        assert any(p.startswith("md5: Feast ") for p in problems)
        assert f"monthly_fee: 1 users differ (first: {user}: Feast {fee}, training_examples " in "\n".join(problems)
    assert f"DIFFERENCE {MID_MONTH}: monthly_fee: 1 users differ" in result.stderr
    assert "feast-check: 4 difference(s)" in result.stdout


def changed_repo(tmp_path, old: str, new: str):
    """A copy of feature_repo/ with one change to its definitions."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(feast.FEATURE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    definitions = repo / "definitions.py"
    text = definitions.read_text()
    assert old in text
    definitions.write_text(text.replace(old, new))
    return repo


def test_numeric_read_as_decimal_is_one_ulp_off_and_fails_the_check(months, feast_venv, tmp_path):
    """Without the float8 cast, pyarrow turns Feast's Decimals into doubles one ulp off for thousands of users."""
    repo = changed_repo(tmp_path, '"numeric": (Float64, "{}::float8")', '"numeric": (Float64, "{}")')
    result, report = run_check(months, tmp_path, repo=repo)
    assert result.returncode == 1
    assert list(report) == [*MONTH_ENDS, MID_MONTH, "online"]
    for request, entry in report.items():
        differing = {p.split(":")[0]: int(p.split()[1]) for p in entry["problems"] if "users differ" in p}
        assert entry["rows"] == ROWS, (request, entry)
        assert set(differing) <= NUMERIC_SNAPSHOT_COLUMNS, (request, entry)
        assert min(differing["monthly_fee"], differing["ticket_avg_resolution_hrs_90d"]) > 1000, (request, entry)
        assert any(p.startswith("md5: Feast ") for p in entry["problems"]), (request, entry)


@pytest.mark.parametrize(("zone", "served"), [
    # East of UTC the DATE's midnight is earlier than the month end asked for: the point-in-time join still
    # finds it, but the materialization window (the month end, 00:00 UTC) does not: the online store stays
    # empty, every feature NULL, and nothing fails.
    ("Pacific/Kiritimati", {MONTH_ENDS[0]: "2024-01-31", MONTH_ENDS[1]: "2024-02-29", MID_MONTH: "2024-01-31",
                            "online": "None"}),
    # West of UTC it is later: January's month end finds nothing and February's silently serves January.
    ("Pacific/Pago_Pago", {MONTH_ENDS[0]: "None", MONTH_ENDS[1]: "2024-01-31", MID_MONTH: "2024-01-31",
                           "online": "None"}),
], ids=["utc+14", "utc-11"])
def test_as_of_left_a_date_is_read_in_the_session_time_zone_and_fails_the_check(months, feast_venv, tmp_path, zone,
                                                                                  served):
    """The DATE itself as the event timestamp: PostgreSQL turns it into a time in the session's zone."""
    repo = changed_repo(tmp_path, "({as_of}::timestamp AT TIME ZONE 'UTC') AS", "{as_of} AS")
    result, report = run_check(months, tmp_path, repo=repo, PGTZ=zone)
    assert result.returncode == 1
    assert {request: list(entry["served_as_ofs"]) for request, entry in report.items()} == {
        request: [as_of] for request, as_of in served.items()}
    for request, entry in report.items():
        assert bool(entry["problems"]) == (served[request] != entry["expected_as_of"]), (request, entry)
        if served[request] == "None":
            assert f"churn_label: {ROWS} users differ (first: " in "\n".join(entry["problems"]), (request, entry)
