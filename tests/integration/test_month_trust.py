"""Month-level trust: a month that parses and passes every row rule can still be wrong as a whole.

January (the real month_000) is staged, validated (row rules and figures) and published once per
module; each test then stages a February made from the real month_001 with one whole-month
damage, and that damage must fail before publish, naming table, column, this month's figure, the
previous month's and the bound, while the live and snapshot tables stay byte-identical. Normal
months (the real February, a month with 7 % growth and new add_on_* columns, 24 generated
months) pass; a warn-level check and an accepted check publish, and say so.
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import uuid

import pytest

from streamflow import history, metrics, pipeline, snapshots, staging, user_sets, validation
from streamflow.errors import ContractViolation
from streamflow.registry import KEY, SNAPSHOTTED, TABLES, USERS
from streamflow.run import RunMonth
from streamflow.validation import ValidationFailed
from streamflow_dev.run_month import run_month
from tests.conftest import ROOT, connect, fresh_warehouse
from tests.golden import FEBRUARY_CHURNERS, JANUARY_CHURNERS, ROWS
from tests.helpers import live_hashes, rewrite, table_hash

FEBRUARY = "month_001"


def set_column(name: str, value_of) -> callable:
    """A transform giving column `name` the value `value_of(row_index, old)`."""
    def transform(header, rows):
        at = header.index(name)
        for index, row in enumerate(rows):
            row[at] = value_of(index, row[at])
        return header, rows
    return transform


def stage_and_validate(conn, url, month: RunMonth, tables=TABLES) -> dict[str, list[validation.Outcome]]:
    """Stage the month, validate `tables` (row rules and figures); a failure raises, as the DAG's task fails."""
    for t in TABLES:
        pipeline.stage_table(conn, t.name, month)
    return {t.name: pipeline.validate_table(conn, url, t.name, month)["outcomes"] for t in tables}


def publish_validated(conn, url, month_name: str, run_id: str, accept=None) -> dict:
    """One month as the DAG runs it: stage, validate every table, publish, stamp."""
    validated = run_month(conn, RunMonth.named(month_name, run_id, accept=accept or ()), sqlalchemy_url=url, stamp=True)
    return {name: result["outcomes"] for name, result in validated["validated"].items()}


def everything(conn) -> dict[str, str]:
    return {**live_hashes(conn), **{t.snapshot_table: table_hash(conn, t.snapshot_table) for t in SNAPSHOTTED}}


@pytest.fixture(scope="module")
def january(pg_server, tmp_path_factory):
    """A warehouse with the real January validated and published (its figures kept): settings, seeds dir."""
    seeds = tmp_path_factory.mktemp("trust-seeds")
    shutil.copytree(ROOT / "data" / "seeds" / "month_000", seeds / "month_000")
    with fresh_warehouse(pg_server, "trust_") as settings:
        with pytest.MonkeyPatch.context() as patch, connect(settings) as conn:
            patch.setenv("STREAMFLOW_SEEDS_DIR", str(seeds))
            publish_validated(conn, settings.url("postgresql+psycopg", settings.database), "month_000",
                              "test__january")
        yield settings, seeds


@pytest.fixture
def february(january, seeds, monkeypatch):
    """A copy of the real month_001 to damage, beside the published January; yields its folder, then
    drops what the test staged (its runs never publish)."""
    settings, seeds_dir = january
    folder = seeds_dir / FEBRUARY
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(seeds / FEBRUARY, folder)
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(seeds_dir))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def trust_conn(january):
    settings, _ = january
    with connect(settings) as conn:
        yield conn


@pytest.fixture
def trust_url(january) -> str:
    settings, _ = january
    return settings.url("postgresql+psycopg", settings.database)


@contextlib.contextmanager
def staging_dropped_after(conn, run_id: str):
    """The run's staging schema is dropped after the block, whatever happened in it (these runs never
    publish, and the module's tests share one warehouse)."""
    try:
        yield
    finally:
        conn.rollback()
        with conn.transaction():
            staging.drop(conn, staging.schema_for(run_id))


@contextlib.contextmanager
def refused_before_publish(conn, run_id: str):
    """The block must fail; afterwards the live and snapshot tables are as they were and nothing of
    February is loaded. Yields a dict that gets the ValidationFailed message as `message`."""
    before = everything(conn)
    conn.commit()
    found: dict[str, str] = {}
    with staging_dropped_after(conn, run_id), pytest.raises(ValidationFailed) as raised:
        yield found
    found["message"] = str(raised.value)
    assert everything(conn) == before
    assert conn.execute("SELECT count(*) FROM ingestion_ledger WHERE month = %s AND status = 'loaded'",
                        (FEBRUARY,)).fetchone() == (0,)


def run_of(name: str) -> tuple[RunMonth, str]:
    month = RunMonth.named(FEBRUARY, f"manual__{name}_{uuid.uuid4().hex[:6]}")
    return month, month.run_id


# --- normal months pass -----------------------------------------------------------------------


def test_the_first_month_skips_every_check_against_history_and_says_why(trust_conn):
    skipped = trust_conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE success AND figures->>'skipped' LIKE 'no month published before%%')"
        " FROM validation_results WHERE run_id = 'test__january' AND figures IS NOT NULL").fetchone()
    assert skipped[0] > 0
    assert skipped[0] == skipped[1]
    figures = trust_conn.execute(
        "SELECT rows, users_joined, previous_as_of FROM validation_metrics WHERE run_id = 'test__january'"
        " AND table_name = 'labels' AND column_name IS NULL").fetchone()
    assert figures == (ROWS, None, None)


def test_the_figures_kept_for_january_are_what_its_files_hold(trust_conn, seeds):
    """Every column's null fraction, distinct count, min/max, mean and frequencies against the CSVs,
    read here in Python (each UNION ALL branch must land on its own column)."""
    import statistics

    for t in TABLES:
        with (seeds / "month_000" / t.file_name).open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        kept = {name: (null_fraction, distinct, low, high, mean, stddev, frequencies) for name, null_fraction,
                distinct, low, high, mean, stddev, frequencies in trust_conn.execute(
            "SELECT column_name, null_fraction, distinct_count, min_value, max_value, mean, stddev, frequencies"
            " FROM validation_metrics WHERE run_id = 'test__january' AND table_name = %s AND column_name IS NOT NULL",
            (t.name,)).fetchall()}
        assert set(kept) == {c.name for c in t.columns if c.name != KEY}
        for column in t.columns:
            if column.name == KEY:
                continue
            cells = [r.get(column.name) or None for r in rows]  # an optional column absent from the file: NULL
            present = [c for c in cells if c is not None]
            null_fraction, distinct, low, high, mean, stddev, frequencies = kept[column.name]
            assert null_fraction == pytest.approx(1 - len(present) / len(rows)), (t.name, column.name)
            typed = {"integer": int, "numeric": float, "boolean": lambda v: v == "True"}.get(column.pg_type, str)
            values = [typed(c) for c in present]
            assert distinct == len(set(values)), (t.name, column.name)
            if column.pg_type in ("integer", "numeric", "boolean") and values:
                assert mean == pytest.approx(statistics.fmean(map(float, values))), (t.name, column.name)
                assert stddev == pytest.approx(statistics.stdev(map(float, values))), (t.name, column.name)
            if column.pg_type in ("integer", "numeric") and values:
                assert (float(low), float(high)) == (min(values), max(values)), (t.name, column.name)
            if column.pg_type in ("text", "date", "boolean") and values:  # text in byte order (COLLATE "C")
                assert (low, high) == tuple(str(v).lower() if column.pg_type == "boolean" else v
                                            for v in (min(values), max(values))), (t.name, column.name)
            if column.pg_type in ("text", "boolean") and values:
                counts = {str(v).lower() if column.pg_type == "boolean" else v: values.count(v) for v in set(values)}
                counts |= {"null": len(cells) - len(present)} if len(present) < len(cells) else {}
                assert frequencies == dict(sorted(counts.items())), (t.name, column.name)


def test_januarys_six_files_keep_one_user_set_whose_fingerprint_sql_recomputes(trust_conn):
    """The six files hold the same 7043 users: one kept set, named by each file, and the fingerprint
    the aggregate scan made of the batch is the one streamflow_user_set_fingerprint makes of the hashes."""
    sets = trust_conn.execute(
        "SELECT fingerprint, cardinality(user_hashes), streamflow_user_set_fingerprint(user_hashes)"
        " FROM validation_user_sets WHERE run_id = 'test__january'").fetchall()
    assert len(sets) == 1
    fingerprint, size, recomputed = sets[0]
    assert (size, recomputed) == (ROWS, fingerprint)
    assert fingerprint.startswith(f"{ROWS}:")
    assert trust_conn.execute(
        "SELECT array_agg(table_name ORDER BY table_name) FROM validation_keysets"
        " WHERE run_id = 'test__january' AND fingerprint = %s", (fingerprint,)).fetchone() == (
        sorted(t.name for t in TABLES),)


def test_files_with_other_users_than_users_csv_are_counted_against_their_own_sets(trust_conn, trust_url, february):
    """users.csv cut to 5000 users, the other files whole (their other users are January's, live):
    users counts 2043 leavers, subscriptions none: the count of one set is not reused for the other."""
    kept = 5000
    rewrite(february / "users.csv", lambda header, rows: (header, rows[:kept]))
    month, run_id = run_of("users_cut")
    with refused_before_publish(trust_conn, run_id) as refused:
        for t in TABLES:
            pipeline.stage_table(trust_conn, t.name, month)
        subscriptions = pipeline.validate_table(trust_conn, trust_url, "subscriptions", month)["outcomes"]
        left = next(o for o in subscriptions if o["expectation_type"] == "users_left")
        assert (left["figures"]["this"], left["success"]) == (0, True)
        assert trust_conn.execute("SELECT count(*) FROM validation_user_sets WHERE run_id = %s",
                                  (run_id,)).fetchone() == (1,)
        pipeline.validate_table(trust_conn, trust_url, USERS, month)
    assert f"users_left: this month {ROWS - kept} (as_of 2024-02-29)" in refused["message"]


def test_the_real_february_passes_every_check_against_the_real_january(trust_conn, trust_url, february):
    month, run_id = run_of("real")
    with staging_dropped_after(trust_conn, run_id):
        validated = stage_and_validate(trust_conn, trust_url, month)
    history_checks = [o for outcomes in validated.values() for o in outcomes if o["figures"]]
    assert [o for o in history_checks if not o["success"]] == []
    skipped = {(o["expectation_type"], o["column"]) for o in history_checks if o["figures"]["skipped"]
               and not (o["column"] or "").startswith("add_on_")}  # add_on_*: in neither file, NULL
    # Skipped only where nothing can be compared: a z-score wants 3 months, and avg_session_mins_7d
    # is 29.14 for every user in both real months (it cannot collapse to one value: it is one).
    assert {check for check, _ in skipped} == {"mean_zscore", "single_value"}
    assert {column for check, column in skipped if check == "single_value"} == {"avg_session_mins_7d"}
    churn = next(o for o in validated["labels"] if o["expectation_type"] == "mean_change")
    assert (round(churn["figures"]["previous"], 4), round(churn["figures"]["this"], 4)) == (
        round(JANUARY_CHURNERS / ROWS, 4), round(FEBRUARY_CHURNERS / ROWS, 4))
    left = next(o for o in validated[USERS] if o["expectation_type"] == "users_left")
    assert (left["figures"]["this"], left["figures"]["previous_as_of"]) == (0, None)


def test_a_month_with_seven_percent_growth_and_new_add_on_columns_passes(trust_conn, trust_url, february):
    joiners = round(ROWS * 0.07)

    def grow(header, rows):
        return header, rows + [[f"GROW-{n:04d}", *rows[n % len(rows)][1:]] for n in range(joiners)]

    for t in TABLES:
        rewrite(february / t.file_name, grow)
    rewrite(february / "users.csv", set_column("signup_date", lambda i, old: "2024-02-10" if i >= ROWS else old))
    rewrite(february / "subscriptions.csv",
            lambda header, rows: (header + ["add_on_security", "add_on_backup", "add_on_device_protect",
                                            "add_on_support"],
                                  [r + [str(i % 2 == 0), str(i % 3 == 0), "True", "False"] for i, r in enumerate(rows)]))
    month, run_id = run_of("growth")
    with staging_dropped_after(trust_conn, run_id):
        validated = stage_and_validate(trust_conn, trust_url, month)
    joined = next(o for o in validated[USERS] if o["expectation_type"] == "users_joined")
    assert joined["figures"]["this"] == joiners
    assert joined["success"]
    assert [o for outcomes in validated.values() for o in outcomes if not o["success"]] == []


def test_twenty_four_generated_months_pass_every_check_against_history(warehouse, conn, tmp_path, monkeypatch):
    """`make data` months (users leave and join, values drift as measured): figures and checks only
    (the row rules are proven on the real months), every month published after its checks."""
    from streamflow_dev.generate import generate

    generate(tmp_path, users=1500, month_count=24, seed=8613, log=lambda *_: None)
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(tmp_path))
    compared: dict[str, set[int]] = {}  # check -> the months it compared (was not skipped) in
    for index in range(24):
        run_id = f"test__generated_{index:03d}"
        month = RunMonth.named(f"month_{index:03d}", run_id)
        for t in TABLES:
            pipeline.stage_table(conn, t.name, month)
        outcomes = [o for t in TABLES for o in pipeline.audit_figures(conn, t.name, month)]
        assert [validation.describe_failure(o) for o in outcomes if not o.success] == [], month
        for o in outcomes:
            if o.figures["skipped"] is None:
                compared.setdefault(o.expectation_type, set()).add(index)
        pipeline.publish_month(conn, month)
        snapshots.stamp(conn, month.as_of)
        conn.commit()
    # The checks really compared: from the second month on, the z-score from the fourth (3 months before it).
    assert compared.pop("mean_zscore") == set(range(3, 24))
    assert compared == {check: set(range(1, 24)) for check in compared}
    assert set(compared) == set(history.CHECKS) - {"mean_zscore"}
    # Only the last two published months' user_id sets are kept.
    assert conn.execute("SELECT array_agg(DISTINCT as_of::text ORDER BY as_of::text) FROM validation_keysets"
                        ).fetchone() == (["2025-11-30", "2025-12-31"],)


# --- whole-month damage fails before publish ------------------------------------------------


def test_an_export_cut_short_in_every_file_fails_rows_and_users_left(trust_conn, trust_url, february):
    kept = 3000
    for t in TABLES:
        rewrite(february / t.file_name, lambda header, rows: (header, rows[:kept]))
    month, run_id = run_of("cut_short")
    with refused_before_publish(trust_conn, run_id) as refused:
        stage_and_validate(trust_conn, trust_url, month, tables=[TABLES[0]])
    message = refused["message"]
    assert "FAILED users.*: rows against the previous month" in message
    assert ("rows: this month 3000 (as_of 2024-02-29), previous month 7043 (as_of 2024-01-31); "
            "bound: 0.9x..1.25x of the previous month (6339..8804)") in message
    assert "FAILED users.*: users who left since the previous month" in message
    assert f"users_left: this month {ROWS - kept} (as_of 2024-02-29)" in message
    assert f"bound: at most 5% of the previous month's {ROWS} users (352.2)" in message
    assert 'accept: ["users.rows_change"]' in message


def test_a_numeric_feature_collapsed_to_one_value_fails_single_value(trust_conn, trust_url, february):
    rewrite(february / "usage_agg_30d.csv", set_column("watch_hours_30d", lambda i, old: "12.5"))
    month, run_id = run_of("collapsed")
    with refused_before_publish(trust_conn, run_id) as refused:
        stage_and_validate(trust_conn, trust_url, month, tables=[TABLES[2]])
    message = refused["message"]
    assert "FAILED usage_agg_30d.watch_hours_30d: distinct values: not collapsed to one" in message
    previous = trust_conn.execute(
        "SELECT distinct_count FROM validation_metrics WHERE run_id = 'test__january'"
        " AND table_name = 'usage_agg_30d' AND column_name = 'watch_hours_30d'").fetchone()[0]
    assert (f"distinct_count: this month 1 (as_of 2024-02-29), previous month {previous} (as_of 2024-01-31); "
            f"bound: more than one value (the previous month had {previous})") in message
    assert "FAILED usage_agg_30d.watch_hours_30d: standard deviation against the previous month" in message
    # The row rules all passed: only the month as a whole shows it.
    assert "expect_column_values_to_be_between" not in message


def test_a_text_column_blank_for_most_rows_fails_its_null_fraction(trust_conn, trust_url, february):
    rewrite(february / "subscriptions.csv", set_column("contract_type", lambda i, old: old if i % 5 == 0 else ""))
    month, run_id = run_of("blank")
    with refused_before_publish(trust_conn, run_id) as refused:
        stage_and_validate(trust_conn, trust_url, month, tables=[TABLES[1]])
    message = refused["message"]
    blank = ROWS - len(range(0, ROWS, 5))
    assert "FAILED subscriptions.contract_type: null fraction against the previous month" in message
    assert (f"null_fraction: this month {blank / ROWS:.4g} (as_of 2024-02-29), previous month 0 (as_of 2024-01-31); "
            "bound: at most 0.1 above the previous month (0.1)") in message
    assert "expect_column_values_to_be_in_set" not in message  # NULL is in every value set


def test_a_date_after_the_months_as_of_fails_before_publish(trust_conn, trust_url, february):
    future = {3: "2024-03-01", 40: "2031-07-04"}
    rewrite(february / "users.csv", set_column("signup_date", lambda i, old: future.get(i, old)))
    month, run_id = run_of("future")
    with refused_before_publish(trust_conn, run_id) as refused:
        stage_and_validate(trust_conn, trust_url, month, tables=[TABLES[0]])
    message = refused["message"]
    assert 'FAILED users.signup_date: expect_column_values_to_be_between {"max_value": "2024-02-29"}' in message
    assert f"unexpected: 2 of {ROWS} rows" in message
    assert "2024-03-01" in message
    assert "2031-07-04" in message


def test_a_user_missing_from_this_months_labels_is_not_covered_by_last_months_label(trust_conn, trust_url,
                                                                                      february):
    with (february / "labels.csv").open() as handle:
        missing = handle.readlines()[7].split(",")[0]
    rewrite(february / "labels.csv", lambda header, rows: (header, [r for r in rows if r[0] != missing]))
    assert trust_conn.execute("SELECT count(*) FROM labels WHERE user_id = %s", (missing,)).fetchone() == (1,)
    month, run_id = run_of("no_label")
    with refused_before_publish(trust_conn, run_id) as refused:
        stage_and_validate(trust_conn, trust_url, month, tables=[TABLES[5]])
    message = refused["message"]
    assert "FAILED labels.*: every user has a labels row and every row a user" in message
    assert f"{missing}='a user without a row'" in message


@pytest.mark.parametrize("padded", [" 7590-VHVEG ", "\t7590-VHVEG", "7590-VHVEG\u00a0"],
                         ids=["spaces", "tab", "no-break-space"])
def test_a_user_id_padded_in_every_file_is_refused_at_staging(trust_conn, trust_url, february, padded):
    for t in TABLES:
        rewrite(february / t.file_name, set_column(KEY, lambda i, old: padded if old == padded.strip() else old))
    month, run_id = run_of("padded")
    before = everything(trust_conn)
    trust_conn.commit()
    with staging_dropped_after(trust_conn, run_id), pytest.raises(ContractViolation) as refused:
        pipeline.stage_table(trust_conn, USERS, month)
    assert str(refused.value) == (f"{february / 'users.csv'}: 1 contract problem(s), nothing was written:\n"
                                  f"  - column \"user_id\": 1 padded user_id(s) (surrounding whitespace): line 2 "
                                  f"{padded!r}")
    assert everything(trust_conn) == before


# --- severity and acceptance: these publish, so each gets a warehouse of its own -----------------


@pytest.fixture
def january_alone(warehouse, conn, seeds, tmp_path, monkeypatch):
    """A fresh warehouse with January validated and published, and a February copy to change."""
    for month in ("month_000", FEBRUARY):
        shutil.copytree(seeds / month, tmp_path / month)
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(tmp_path))
    url = warehouse.url("postgresql+psycopg", warehouse.database)
    publish_validated(conn, url, "month_000", "test__january")
    return url, tmp_path / FEBRUARY


def flip_churn(folder, count: int) -> None:
    """`count` more churners than the real February (labels False -> True)."""
    def transform(header, rows):
        flipped = 0
        for row in rows:
            if row[1] == "False" and flipped < count:
                row[1], flipped = "True", flipped + 1
        return header, rows
    rewrite(folder / "labels.csv", transform)


def test_a_churn_rate_shift_fails_and_an_accepted_run_publishes_it_recorded_in_the_ledger(conn, january_alone):
    url, folder = january_alone
    flip_churn(folder, 1500)  # 24.2 % -> 45.5 %
    month = RunMonth.named(FEBRUARY, "manual__churn_shift")
    with pytest.raises(ValidationFailed) as refused:
        stage_and_validate(conn, url, month, tables=[TABLES[5]])
    message = str(refused.value)
    assert "FAILED labels.churn_label: mean against the previous month" in message
    assert "bound: within ±0.05 of the previous month (0.2154..0.3154)" in message
    assert 'accept: ["labels.mean_change.churn_label"]' in message

    with pytest.raises(Exception, match="accept names no check against history: 'labels.mean_change.churn'"):
        pipeline.prepare_month(FEBRUARY, None, "manual__churn_refused", accept=["labels.mean_change.churn"])
    accepted = pipeline.prepare_month(FEBRUARY, None, "manual__churn_accepted",
                                      accept=["labels.mean_change.churn_label"])
    publish_validated(conn, url, FEBRUARY, "manual__churn_accepted", accept=accepted.accept)

    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM labels_snapshots WHERE as_of = '2024-02-29'"
                        ).fetchone() == (FEBRUARY_CHURNERS + 1500,)
    assert conn.execute(
        "SELECT DISTINCT accepted_checks FROM ingestion_ledger WHERE run_id = 'manual__churn_accepted'").fetchall() == [
        (["labels.mean_change.churn_label"],)]
    assert conn.execute(
        "SELECT success, severity, (figures->>'accepted')::boolean FROM validation_results"
        " WHERE run_id = 'manual__churn_accepted' AND expectation_type = 'mean_change' AND table_name = 'labels'"
    ).fetchone() == (False, "warn", True)


def test_a_warn_level_check_is_recorded_and_logged_and_the_month_publishes(conn, january_alone, tmp_path,
                                                                           monkeypatch, caplog):
    """The reviewer's way to soften a check: `severity: warn` in expectations.yml."""
    import yaml

    url, folder = january_alone
    declared = yaml.safe_load(validation.SUITES_FILE.read_text())
    declared["labels"] = [{**spec, "severity": "warn"} if spec.get("check") == "mean_change" else spec
                          for spec in declared["labels"]]
    softened = tmp_path / "expectations.yml"
    softened.write_text(yaml.safe_dump(declared))
    monkeypatch.setattr(validation, "SUITES_FILE", softened)
    validation.suites_file.cache_clear()
    try:
        flip_churn(folder, 1500)
        with caplog.at_level("INFO", logger="streamflow.pipeline"):
            publish_validated(conn, url, FEBRUARY, "manual__churn_warned")
    finally:
        validation.suites_file.cache_clear()
    assert "WARNING labels.churn_label: mean against the previous month" in caplog.text
    assert "1 warning(s)" in caplog.text
    summary = pipeline.validation_summary(conn, "manual__churn_warned")
    assert (summary["failed"], summary["warnings"]) == (0, 1)
    assert conn.execute("SELECT count(*) FILTER (WHERE churn_label) FROM labels WHERE user_id IS NOT NULL"
                        ).fetchone() == (FEBRUARY_CHURNERS + 1500,)
    assert conn.execute(
        "SELECT success, severity FROM validation_results WHERE run_id = 'manual__churn_warned'"
        " AND expectation_type = 'mean_change' AND table_name = 'labels'").fetchone() == (False, "warn")
    history = metrics.history(conn, "labels", "2024-03-31")
    assert [m.as_of for m in history] == ["2024-01-31", "2024-02-29"]
    assert round(history[-1].columns["churn_label"].mean, 4) == round((FEBRUARY_CHURNERS + 1500) / ROWS, 4)


def test_a_rerun_whose_users_file_is_a_replay_covers_this_months_users_not_every_live_one(conn, january_alone):
    """February without three of January's users (they left), published; then February again with one
    label corrected: users.csv is a replay (staged empty), and this month's users are the ones of the
    file February was published from (kept user_ids), not the live users, who include the three."""
    url, folder = january_alone
    leavers = {"7590-VHVEG", "5575-GNVDE", "3668-QPYBK"}
    for t in TABLES:
        rewrite(folder / t.file_name, lambda header, rows: (header, [r for r in rows if r[0] not in leavers]))
    publish_validated(conn, url, FEBRUARY, "manual__february")
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (ROWS,)  # the leavers stay live

    rewrite(folder / "labels.csv", set_column("churn_label", lambda i, old: ("True" if old == "False" else "False")
                                              if i == 0 else old))
    validated = publish_validated(conn, url, FEBRUARY, "manual__february_corrected")

    assert set(validated) == {t.name for t in TABLES}
    assert validated[USERS] == []  # a replay: nothing new to validate
    coverage = next(o for o in validated["labels"] if o["expectation"].startswith("every user has a labels row"))
    assert coverage["success"]
    assert conn.execute("SELECT status, count(*) FROM ingestion_ledger WHERE run_id = 'manual__february_corrected'"
                        " GROUP BY status ORDER BY status").fetchall() == [("loaded", 1), ("replayed", 5)]


def test_a_warehouse_with_a_user_set_per_file_moves_them_into_shared_sets_on_setup(conn):
    """validation_keysets as first shipped (user_hashes per file): setup moves each set into
    validation_user_sets under its fingerprint, and the next month finds it as its previous set."""
    from streamflow.schema import apply_schema

    conn.execute("DROP TABLE validation_keysets")
    conn.execute("CREATE TABLE validation_keysets (run_id TEXT NOT NULL, as_of DATE NOT NULL, table_name TEXT NOT NULL,"
                 " user_hashes BIGINT[] NOT NULL, PRIMARY KEY (run_id, table_name))")
    ids = [f"{n:04d}-OLDSET" for n in range(50)]
    for name, chosen in (("users", ids), ("labels", ids), ("support_agg_90d", ids[:40])):
        conn.execute("INSERT INTO validation_keysets SELECT 'scheduled__jan', '2024-01-31', %s,"
                     " array_agg(hashtextextended(u, 0)) FROM unnest(%s::text[]) AS u", (name, chosen))
    conn.execute("INSERT INTO ingestion_ledger (run_id, month, as_of, table_name, file_path, status, started_at)"
                 " SELECT 'scheduled__jan', 'month_000', '2024-01-31', t, t || '.csv', 'loaded', now()"
                 " FROM unnest(ARRAY['users', 'labels', 'support_agg_90d']) AS t")
    conn.execute("DELETE FROM schema_migrations WHERE filename = '0007_shared_user_sets.sql'")  # never had it
    conn.commit()
    apply_schema(conn)
    conn.commit()

    assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'validation_keysets'"
                        " AND column_name = 'user_hashes'").fetchone() == (0,)
    assert conn.execute("SELECT array_agg(cardinality(user_hashes) ORDER BY cardinality(user_hashes))"
                        " FROM validation_user_sets").fetchone() == ([40, 50],)
    previous = {name: user_sets.previous_users(conn, name, "2024-02-29") for name in ("users", "labels", "support_agg_90d")}
    assert previous["users"] == previous["labels"] != previous["support_agg_90d"]
    assert previous["users"].user_set.startswith("50:")
    assert previous["support_agg_90d"].user_set.startswith("40:")
    assert previous["users"].run_id == "scheduled__jan"
    apply_schema(conn)  # a second setup finds nothing to move and keeps the sets
    assert conn.execute("SELECT count(*) FROM validation_user_sets").fetchone() == (2,)
