"""The Great Expectations suites against real data in a real PostgreSQL.

The real months pass every expectation of every table; each deliberate breakage (made with
SQL on the live tables after a real load) fails exactly the expectation meant to catch it,
with the count and the user_ids, and the failure is what `raise_if_failed` and
`record_outcomes` report.
"""

from __future__ import annotations

import html
import json

import psycopg
import pytest

from streamflow import validation
from streamflow.registry import KEY, TABLES, TABLES_BY_NAME, USERS
from streamflow.run import RunMonth
from streamflow.validation import ValidationFailed
from streamflow_dev.run_month import run_month
from tests.golden import ROWS
from tests.helpers import load_month

BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"


@pytest.fixture
def url(warehouse) -> str:
    return warehouse.url("postgresql+psycopg", warehouse.database)


@pytest.fixture
def loaded(conn, seeds):
    """The warehouse with the real month_000 in every live table."""
    load_month(conn, seeds, "month_000")
    conn.commit()
    return conn


def pick_users(conn, table: str, count: int) -> list[str]:
    """`count` user_ids of a table, spread over it (not the first lines of the file)."""
    rows = conn.execute(f"SELECT {KEY} FROM {table} ORDER BY md5({KEY}) LIMIT %s", (count,)).fetchall()
    assert len(rows) == count
    return [row[0] for row in rows]


def spec_of(table_name: str, type_: str, column: str) -> dict:
    """The one spec of a suite with that type and column (so the tests follow expectations.yml)."""
    found = [s for s in validation.suite_spec(TABLES_BY_NAME[table_name])
             if s["type"] == type_ and s["kwargs"].get("column") == column]
    assert len(found) == 1, found
    return found[0]


def failed(outcomes: list[validation.Outcome]) -> list[validation.Outcome]:
    return [o for o in outcomes if not o.success]


@pytest.mark.parametrize("months", [("month_000",), ("month_000", "month_001")], ids=["month_000", "month_001"])
def test_real_months_pass_every_expectation(conn, seeds, url, months):
    for month in months:  # month_001 is applied over month_000, as the monthly runs do
        load_month(conn, seeds, month)
    conn.commit()
    for table in TABLES:
        outcomes = validation.run_suite(url, table)
        assert len(outcomes) == len(validation.suite_spec(table))
        assert all(o.table == table.name for o in outcomes)
        assert not failed(outcomes), validation.summarise(outcomes)
        assert [o.error for o in outcomes if o.error] == []
        validation.raise_if_failed(outcomes)


@pytest.fixture
def negative_watch_hours(loaded):
    """Three users of usage_agg_30d with watch_hours_30d below zero; returns their user_ids."""
    users = pick_users(loaded, "usage_agg_30d", 3)
    changed = loaded.execute("UPDATE usage_agg_30d SET watch_hours_30d = -1 - watch_hours_30d "
                             "WHERE user_id = ANY(%s)", (users,)).rowcount
    loaded.commit()
    assert changed == 3
    return users


def test_negative_watch_hours_fail_exactly_their_expectation(negative_watch_hours, url):
    table = TABLES_BY_NAME["usage_agg_30d"]
    spec = spec_of(table.name, BETWEEN, "watch_hours_30d")
    assert spec["kwargs"]["min_value"] == 0

    outcomes = validation.run_suite(url, table)

    [failure] = failed(outcomes)
    assert (failure.expectation, failure.column) == (BETWEEN, "watch_hours_30d")
    assert failure.unexpected_count == 3
    assert failure.error is None
    assert sorted(s[KEY] for s in failure.samples) == sorted(negative_watch_hours)
    assert all(float(s["value"]) < 0 for s in failure.samples)

    with pytest.raises(ValidationFailed) as caught:
        validation.raise_if_failed(outcomes)
    message = str(caught.value)
    for expected in ("1 expectation(s) failed", table.name, "watch_hours_30d", BETWEEN, "unexpected: 3",
                     *negative_watch_hours):
        assert expected in message, f"{expected!r} not in:\n{message}"
    assert validation.summarise(outcomes).startswith(f"{table.name}: {len(outcomes) - 1}/{len(outcomes)} expectations passed")


def test_record_outcomes_keeps_one_row_per_expectation(negative_watch_hours, url, loaded):
    conn, table = loaded, TABLES_BY_NAME["usage_agg_30d"]
    outcomes = validation.run_suite(url, table)
    run = {"run_id": "manual__test_validation", "month": "month_000", "as_of": "2022-02-28"}

    validation.record_outcomes(conn, run, outcomes)

    rows = conn.execute(
        "SELECT table_name, expectation, column_name, success, unexpected_count, samples, month, as_of::text"
        " FROM validation_results WHERE run_id = %s ORDER BY id", (run["run_id"],)).fetchall()
    assert len(rows) == len(outcomes)
    assert [(r[1], r[2]) for r in rows] == [(o.expectation, o.column) for o in outcomes]
    assert {(r[0], r[6], r[7]) for r in rows} == {(table.name, run["month"], run["as_of"])}
    failures = [r for r in rows if not r[3]]
    assert [(r[1], r[2], r[4]) for r in failures] == [(BETWEEN, "watch_hours_30d", 3)]
    samples = failures[0][5] if isinstance(failures[0][5], list) else json.loads(failures[0][5])
    assert sorted(s[KEY] for s in samples) == sorted(negative_watch_hours)


@pytest.fixture
def missing_label(loaded):
    """One user's labels row deleted; returns that user_id."""
    [user] = pick_users(loaded, "labels", 1)
    assert loaded.execute("DELETE FROM labels WHERE user_id = %s", (user,)).rowcount == 1
    loaded.commit()
    return user


def coverage_failure(url) -> tuple[str, validation.Outcome, list[validation.Outcome]]:
    table = TABLES_BY_NAME["labels"]
    coverage = f"every user has a {table.name} row and every row a user"
    assert coverage in [s.get("description") for s in validation.suite_spec(table)]
    outcomes = validation.run_suite(url, table)
    [failure] = failed(outcomes)
    return coverage, failure, outcomes


def test_missing_labels_row_fails_coverage(missing_label, url):
    coverage, failure, outcomes = coverage_failure(url)

    assert failure.expectation == coverage
    assert failure.unexpected_count == 1
    assert failure.error is None
    with pytest.raises(ValidationFailed, match=coverage):
        validation.raise_if_failed(outcomes)
    # The users table itself is untouched and still passes its own suite.
    assert not failed(validation.run_suite(url, TABLES_BY_NAME[USERS]))


def test_a_labels_row_without_a_user_fails_the_same_coverage(loaded, url):
    """The other side of the one full join. The foreign key forbids such a row, so it is made with
    the foreign-key triggers off (replica role): what a restore or a hand edit could leave."""
    orphan = "ORPHAN-0001"
    with loaded.transaction():
        loaded.execute("SET LOCAL session_replication_role = replica")
        loaded.execute("INSERT INTO labels (user_id, churn_label) VALUES (%s, true)", (orphan,))
    loaded.commit()

    coverage, failure, _ = coverage_failure(url)

    assert (failure.expectation, failure.unexpected_count) == (coverage, 1)
    assert failure.samples == [{KEY: orphan, "value": "a row without a user"}]


def test_missing_labels_row_failure_names_the_user(missing_label, url):
    _, failure, outcomes = coverage_failure(url)

    assert failure.samples == [{KEY: missing_label, "value": "a user without a row"}]
    with pytest.raises(ValidationFailed) as caught:
        validation.raise_if_failed(outcomes)
    assert missing_label in str(caught.value)


def test_unknown_contract_type_fails_the_value_set(loaded, url):
    table = TABLES_BY_NAME["subscriptions"]
    known = spec_of(table.name, IN_SET, "contract_type")["kwargs"]["value_set"]
    unknown = "Lifetime"
    assert unknown not in known
    [user] = pick_users(loaded, table.name, 1)
    loaded.execute("UPDATE subscriptions SET contract_type = %s WHERE user_id = %s", (unknown, user))
    loaded.commit()

    outcomes = validation.run_suite(url, table)

    [failure] = failed(outcomes)
    assert (failure.expectation, failure.column) == (IN_SET, "contract_type")
    assert failure.kwargs["value_set"] == known
    assert failure.unexpected_count == 1
    assert failure.samples == [{KEY: user, "value": unknown}]
    with pytest.raises(ValidationFailed) as caught:
        validation.raise_if_failed(outcomes)
    for expected in (table.name, "contract_type", IN_SET, user, unknown):
        assert expected in str(caught.value)


def test_validation_view_escapes_what_the_file_carried(loaded, url):
    """A file's value is shown in the page as text, never as markup (the view is served by the API server)."""
    from streamflow import validation_view

    table = TABLES_BY_NAME["subscriptions"]
    hostile = "<img src=x onerror=alert(1)>"
    [user] = pick_users(loaded, table.name, 1)
    loaded.execute("UPDATE subscriptions SET contract_type = %s WHERE user_id = %s", (hostile, user))
    loaded.commit()
    run = {"run_id": "manual__<b>run</b>", "month": "month_000", "as_of": "2024-01-31"}
    validation.record_outcomes(loaded, run, validation.run_suite(url, table))
    loaded.commit()

    page = validation_view.render(validation_view.fetch(loaded, run["run_id"], table.name), "ingest_month",
                                  run["run_id"], f"validate.{table.name}")

    assert html.escape(hostile, quote=True) in page
    assert "<img" not in page
    assert "<b>run" not in page


def test_validation_view_shows_the_failure_with_bound_reason_counts_and_samples(negative_watch_hours, url, loaded):
    from streamflow import pipeline, validation_view

    conn, table = loaded, TABLES_BY_NAME["usage_agg_30d"]
    spec = spec_of(table.name, BETWEEN, "watch_hours_30d")
    run = {"run_id": "manual__2024-03-01T00:00:00+00:00", "month": "month_000", "as_of": "2024-01-31"}
    validation.record_outcomes(conn, run, validation.run_suite(url, TABLES_BY_NAME[USERS]))
    validation.record_outcomes(conn, run, validation.run_suite(url, table))
    conn.commit()

    rows = validation_view.fetch(conn, run["run_id"], table.name)
    page = validation_view.render(rows, "ingest_month", run["run_id"], f"validate.{table.name}")

    assert {r["table_name"] for r in rows} == {table.name}
    [failure] = [r for r in rows if not r["success"]]
    assert (failure["expectation_type"], failure["why"]) == (BETWEEN, spec["why"])
    assert f"{table.name}: {len(rows) - 1}/{len(rows)} expectations passed, 1 failed" in page
    failing_row = page[page.index("<tr class='fail'>"):]
    failing_row = failing_row[:failing_row.index("</tr>")]
    assert BETWEEN in failing_row
    assert f"3 of {ROWS} rows" in failing_row
    assert "max_value=720, min_value=0" in failing_row
    assert (spec["kwargs"]["min_value"], spec["kwargs"]["max_value"]) == (0, 720)
    assert html.escape(spec["why"], quote=True) in failing_row
    for user in negative_watch_hours:
        assert f"{user}=-" in failing_row  # user_id=value, the value negative
    assert page.count("<tr class='pass'>") == len(rows) - 1

    # The DAG run's view: every table validated in the run; a task that validates nothing links to it.
    whole_run = validation_view.fetch(conn, run["run_id"])
    assert {r["table_name"] for r in whole_run} == {USERS, table.name}
    other = validation_view.render([], "ingest_month", run["run_id"], "stage_users")
    assert "validates no table" in other
    assert validation_view.view_path("ingest_month", run["run_id"]) in other
    assert pipeline.validation_summary(conn, run["run_id"]) == {
        "tables": 2, "expectations": len(whole_run), "passed": len(whole_run) - 1, "failed": 1, "warnings": 0}


def test_validation_view_keeps_the_latest_attempt_of_a_table(negative_watch_hours, url, loaded):
    from streamflow import validation_view

    conn, table = loaded, TABLES_BY_NAME["usage_agg_30d"]
    run = {"run_id": "manual__retried", "month": "month_000", "as_of": "2024-01-31"}
    validation.record_outcomes(conn, run, validation.run_suite(url, table))  # first try: fails
    conn.execute("UPDATE usage_agg_30d SET watch_hours_30d = 0 WHERE watch_hours_30d < 0")
    conn.commit()
    validation.record_outcomes(conn, run, validation.run_suite(url, table))  # fixed, cleared, run again
    conn.commit()

    rows = validation_view.fetch(conn, run["run_id"], table.name)
    assert len(rows) == len(validation.suite_spec(table))
    assert all(r["success"] for r in rows)


# --------------------------------------------------------------------------- the staged month (write, audit)


@pytest.fixture
def january_published(conn, seeds, tmp_path, monkeypatch):
    """month_000 published and stamped; a tmp seeds dir holding it and a copy of month_001 to break."""
    import shutil

    from streamflow import snapshots

    for month in ("month_000", "month_001"):
        shutil.copytree(seeds / month, tmp_path / month)
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(tmp_path))
    run_month(conn, RunMonth.named("month_000", "test__january"))
    snapshots.stamp(conn, "2024-01-31")
    conn.commit()
    return tmp_path


def negate_watch_hours(path, lines: range) -> dict[str, str]:
    """Make watch_hours_30d negative on those data lines; return {user_id: the new value}."""
    rows = path.read_text().splitlines(keepends=True)
    broken = {}
    for index in lines:
        fields = rows[index].split(",")
        fields[1] = f"-{fields[1]}"
        broken[fields[0]] = fields[1]
        rows[index] = ",".join(fields)
    path.write_text("".join(rows))
    return broken


def stage_all(conn, month) -> None:
    from streamflow import pipeline

    for t in TABLES:
        pipeline.stage_table(conn, t.name, month)


def test_a_staged_month_failing_validation_keeps_every_failing_key_and_leaves_live_tables(conn, url, january_published):
    """25 bad rows (more than the 10 samples): all 25 user_ids with their values are kept; nothing is live."""
    from streamflow import pipeline
    from tests.helpers import live_hashes

    broken = negate_watch_hours(january_published / "month_001" / "usage_agg_30d.csv", range(2, 27))
    run_id = "manual__bad_february"
    month = RunMonth.named("month_001", run_id)
    before = live_hashes(conn)
    conn.commit()
    stage_all(conn, month)

    with pytest.raises(ValidationFailed, match=f"unexpected: 25 of {ROWS} rows"):
        pipeline.validate_table(conn, url, "usage_agg_30d", month)
    pipeline.validate_table(conn, url, USERS, month)  # the other tables pass
    # Each step leaves its connection idle: what it recorded is committed, not in a transaction left open.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

    assert live_hashes(conn) == before
    result_id, unexpected, samples = conn.execute(
        "SELECT id, unexpected_count, samples FROM validation_results WHERE run_id = %s AND NOT success",
        (run_id,)).fetchone()
    assert (unexpected, len(samples)) == (25, validation.SAMPLE_SIZE)
    kept = dict(conn.execute("SELECT user_id, value FROM validation_failing_keys WHERE validation_result_id = %s",
                             (result_id,)).fetchall())
    assert {user: float(value) for user, value in kept.items()} == {user: float(v) for user, v in broken.items()}
    from streamflow import validation_view  # the Validation tab says where the full list is

    page = validation_view.render(validation_view.fetch(conn, run_id, "usage_agg_30d"), "ingest_month", run_id,
                                  "validate.usage_agg_30d")
    assert "25 failing user_id(s) kept in <code>validation_failing_keys</code>" in page


def test_a_staged_user_without_a_row_fails_coverage_against_staged_and_live_rows(conn, url, january_published):
    """A new user in users.csv whose labels.csv line is missing: neither staged nor live, so not covered."""
    from streamflow import pipeline

    users = january_published / "month_001" / "users.csv"
    users.write_text(users.read_text() + "NEW-0001,2024-02-10,Female,False,True,False\n")
    run_id = "manual__new_user"
    month = RunMonth.named("month_001", run_id)
    stage_all(conn, month)

    with pytest.raises(ValidationFailed, match="every user has a labels row"):
        pipeline.validate_table(conn, url, "labels", month)

    kept = conn.execute(
        "SELECT k.user_id, k.value FROM validation_failing_keys AS k JOIN validation_results AS r"
        " ON r.id = k.validation_result_id WHERE r.run_id = %s AND r.table_name = 'labels'", (run_id,)).fetchall()
    assert kept == [("NEW-0001", "a user without a row")]
    assert conn.execute("SELECT count(*) FROM users WHERE user_id = 'NEW-0001'").fetchone() == (0,)
