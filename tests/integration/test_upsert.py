"""The loader on the real files: counts, NULLs, exact decimals, idempotence, minimal updates."""

from __future__ import annotations

import csv

import pytest

from streamflow import stage
from streamflow.errors import ContractViolation
from streamflow.registry import TABLES, table
from streamflow.run import RunMonth
from streamflow_dev.run_month import run_month
from tests.golden import FEBRUARY_CHURNERS, ROWS
from tests.helpers import apply_file, live_hashes, load_month


def test_first_month_lands_every_row(conn, seeds):
    results = load_month(conn, seeds, "month_000")
    assert {name: (r.rows, r.inserted, r.updated, r.unchanged) for name, r in results.items()} == {
        t.name: (ROWS, ROWS, 0, 0) for t in TABLES}
    for t in TABLES:
        assert conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] == ROWS


def test_real_files_copy_straight_into_staging_and_a_first_load_publishes_in_bulk(conn, seeds):
    """The real files take the typed COPY; into empty live tables the publish is one INSERT ... SELECT;
    the same files again are MERGEd and find nothing that differs."""
    first = load_month(conn, seeds, "month_000")
    assert {(r.write, r.publish) for r in first.values()} == {("copy", "bulk")}
    again = load_month(conn, seeds, "month_000")
    assert {(r.write, r.publish, r.inserted, r.updated) for r in again.values()} == {("copy", "merge", 0, 0)}


def with_padded_keys(source, target_dir, paddings: dict[int, str]) -> tuple:
    """`source` written to `target_dir` with the user_id of each file line in `paddings` wrapped
    as the pattern says ("  {}", "{} "); returns the new path and, by line, the user_id as written."""
    lines = source.read_text().splitlines(keepends=True)
    written = {}
    for line, pattern in paddings.items():
        user, rest = lines[line - 1].split(",", 1)
        written[line] = pattern.format(user)
        lines[line - 1] = f"{written[line]},{rest}"
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / source.name
    path.write_text("".join(lines))
    return path, written


def assert_padded_refusal(error: ContractViolation, path, written: dict[int, str]) -> None:
    """The refusal names the file, the column, how many keys are padded and each line with its value."""
    message = str(error)
    assert error.path == str(path)
    assert message.startswith(f"{path}: ")
    listed = ", ".join(f"line {line} {value!r}" for line, value in sorted(written.items()))
    assert f'column "user_id": {len(written)} padded user_id(s) (surrounding whitespace): {listed}' in message


def staged_tables(conn, run_id: str) -> set[str]:
    """The tables the run's staging schema holds (its manifest aside)."""
    from streamflow import staging

    return {name for (name,) in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name <> %s",
        (staging.schema_for(run_id), staging.MANIFEST)).fetchall()}


@pytest.mark.parametrize("pattern", ["  {}", "{} ", " {} ", "\t{}", "{}\u00a0"],
                         ids=["leading", "trailing", "both", "tab", "no-break-space"])
@pytest.mark.parametrize("table_name", ["users", "labels"])
def test_a_padded_key_on_first_load_is_refused(conn, seeds, tmp_path, table_name, pattern):
    """The typed COPY doubts the key and gives way; the checked path refuses it, trimmed it is not."""
    if table_name != "users":
        apply_file(conn, table("users"), seeds / "month_000" / "users.csv")
    before = live_hashes(conn)
    conn.commit()
    path, written = with_padded_keys(seeds / "month_000" / f"{table_name}.csv", tmp_path, {4: pattern})

    with pytest.raises(ContractViolation) as caught:
        apply_file(conn, table(table_name), path, run_id="test__padded_first_load")

    assert_padded_refusal(caught.value, path, written)
    assert live_hashes(conn) == before
    assert conn.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0] == 0
    assert staged_tables(conn, "test__padded_first_load") == set()


@pytest.fixture
def month_000_loaded(conn, seeds, tmp_path, monkeypatch):
    """month_000 loaded and stamped as a DAG run leaves it; the seeds dir a copy month_001 can be edited in."""
    import shutil

    from streamflow import snapshots

    for month in ("month_000", "month_001"):
        shutil.copytree(seeds / month, tmp_path / "seeds" / month)
    monkeypatch.setenv("STREAMFLOW_SEEDS_DIR", str(tmp_path / "seeds"))
    run = RunMonth.named("month_000", "test__month_000")
    run_month(conn, run)
    snapshots.stamp(conn, run.as_of)
    conn.commit()
    return tmp_path / "seeds"


@pytest.mark.parametrize("table_name", ["users", "labels"])
def test_a_padded_key_in_a_later_month_is_refused_not_merged_into_the_known_user(conn, month_000_loaded,
                                                                                 table_name):
    """month_001's file with one known user_id padded: refused, a `failed` ledger row, nothing
    staged or live changed; the same file unpadded then takes the typed COPY."""
    from streamflow import pipeline

    month_dir = month_000_loaded / "month_001"
    original = (month_dir / f"{table_name}.csv").read_bytes()
    # A tab or a no-break space too: PostgreSQL's btrim alone strips neither, and a users.csv
    # key so padded would have staged as a new user beside the known one.
    paddings = {4: "{} ", 9: "   {}", 12: "\t{}", 15: "{}\u00a0"}
    path, written = with_padded_keys(month_dir / f"{table_name}.csv", month_dir, paddings)
    known = {value.strip() for value in written.values()}
    assert conn.execute("SELECT count(*) FROM users WHERE user_id = ANY(%s)", (list(known),)).fetchone()[0] == 4
    before = live_hashes(conn)
    conn.commit()
    run = RunMonth.named("month_001", "test__padded_month_001")

    with pytest.raises(ContractViolation) as caught:
        pipeline.stage_table(conn, table_name, run)

    assert_padded_refusal(caught.value, path, written)
    assert live_hashes(conn) == before
    assert staged_tables(conn, "test__padded_month_001") == set()
    ledger = conn.execute("SELECT status, error FROM ingestion_ledger WHERE run_id = %s AND table_name = %s",
                          ("test__padded_month_001", table_name)).fetchall()
    assert ledger == [("failed", str(caught.value))]
    conn.commit()

    path.write_bytes(original)
    assert pipeline.stage_table(conn, table_name, run)["method"] == "copy"


def test_every_padded_key_is_counted_and_named_up_to_the_sample_limit(conn, seeds, tmp_path):
    from streamflow.diagnosis import SAMPLE_LIMIT

    load_month(conn, seeds, "month_000")
    before = live_hashes(conn)
    conn.commit()
    padded_lines = range(2, 2 + SAMPLE_LIMIT + 2)
    path, written = with_padded_keys(seeds / "month_001" / "subscriptions.csv", tmp_path,
                                     {line: " {}" if line % 2 else "{}  " for line in padded_lines})

    with pytest.raises(ContractViolation) as caught:
        apply_file(conn, table("subscriptions"), path)

    sampled = dict(sorted(written.items())[:SAMPLE_LIMIT])
    listed = ", ".join(f"line {line} {value!r}" for line, value in sampled.items())
    assert f'column "user_id": {len(written)} padded user_id(s) (surrounding whitespace): {listed}' in str(caught.value)
    assert f"line {max(padded_lines)} " not in str(caught.value)
    assert live_hashes(conn) == before


# A date cell as written in the file, and the date it is read as: trimmed of the contract's
# padding (diagnosis.PADDING), as the checked path's casts trim it, so both paths agree.
ISO_OR_BLANK_DATES = {"iso": ("2022-02-05", "2022-02-05"), "spaces": (" 2022-02-05 ", "2022-02-05"),
                      "tab": ("\t2022-02-05", "2022-02-05"), "quoted-line-break": ('"2022-02-05\n"', "2022-02-05"),
                      "blank": ("", None)}


@pytest.mark.parametrize(("signup_date", "read_as"), ISO_OR_BLANK_DATES.values(), ids=ISO_OR_BLANK_DATES.keys())
def test_a_users_file_with_iso_or_blank_dates_copies_straight_in(conn, seeds, tmp_path, signup_date, read_as):
    lines = (seeds / "month_000" / "users.csv").read_text().splitlines(keepends=True)
    fields = lines[5].split(",")
    fields[1] = signup_date
    lines[5] = ",".join(fields)
    path = tmp_path / "users.csv"
    path.write_text("".join(lines))

    result = apply_file(conn, table("users"), path)

    assert (result.write, result.inserted) == ("copy", ROWS)
    stored = conn.execute("SELECT signup_date::text FROM users WHERE user_id = %s", (fields[0],)).fetchone()[0]
    assert stored == read_as


# Files where PostgreSQL's CSV reading finds a date that is not YYYY-MM-DD but Python's csv or re
# would not: a line break inside a quoted date cell (Python's `$` also matches before a final
# newline; a line break at either end is padding, trimmed on both paths); quotes inside fields, which PostgreSQL reads as
# quoting ("a"b,c"d" is one field for it, two for Python), so that PostgreSQL's signup_date is
# "05/02/2022" where Python's is blank.
USERS_HEADER = "user_id,signup_date,user_gender,user_is_senior,has_family,has_dependents"
NOT_ISO_FOR_POSTGRESQL = {
    "newline-in-quoted-date": (USERS_HEADER, 'NEW-0001,"2022-02\n-05",Female,False,True,False'),
    "newline-then-more-in-quoted-date": (USERS_HEADER, 'NEW-0001,"2022-02-05\n05",Female,False,True,False'),
    "quotes-inside-fields": ("user_id,has_family,signup_date,user_gender,user_is_senior,has_dependents",
                             'a"b,c"d,,05/02/2022,x"y,"p,t,t"ru"e'),
}


@pytest.mark.parametrize(("header", "line"), NOT_ISO_FOR_POSTGRESQL.values(), ids=NOT_ISO_FOR_POSTGRESQL.keys())
def test_a_first_load_refuses_dates_only_postgresql_reads_as_dates(conn, tmp_path, header, line):
    """The direct COPY's date scan must not be fooled: the staged path refuses, nothing is written."""
    path = tmp_path / "users.csv"
    path.write_text(f"{header}\n{line}\n")

    with pytest.raises(ContractViolation) as caught:
        apply_file(conn, table("users"), path)

    message = str(caught.value)
    assert 'column "signup_date"' in message
    assert "line 2" in message
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_blank_cells_are_null_never_true(conn, seeds):
    load_month(conn, seeds, "month_000")
    counts = conn.execute(
        "SELECT count(*) FILTER (WHERE plan_stream_tv IS NULL), count(*) FILTER (WHERE plan_stream_movies IS NULL),"
        " count(*) FILTER (WHERE net_service = 'No' AND plan_stream_tv IS NOT NULL) FROM subscriptions").fetchone()
    assert counts == (1526, 1526, 0)


def test_columns_absent_from_the_file_stay_null(conn, seeds):
    result = load_month(conn, seeds, "month_000")["subscriptions"]
    assert result.absent_columns == ("add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support")
    assert conn.execute(
        "SELECT count(*) FROM subscriptions WHERE num_nonnulls(add_on_security, add_on_backup,"
        " add_on_device_protect, add_on_support) > 0").fetchone()[0] == 0


def test_numeric_values_keep_the_files_exact_text(conn, seeds):
    load_month(conn, seeds, "month_000")
    with (seeds / "month_000" / "usage_agg_30d.csv").open() as handle:
        expected = {row["user_id"]: row["watch_hours_30d"] for row in csv.DictReader(handle)}
    stored = dict(conn.execute("SELECT user_id, watch_hours_30d::text FROM usage_agg_30d").fetchall())
    assert stored == expected


def test_same_month_again_changes_nothing(conn, seeds):
    load_month(conn, seeds, "month_000")
    before = live_hashes(conn)
    again = load_month(conn, seeds, "month_000")
    assert {r.inserted + r.updated for r in again.values()} == {0}
    assert live_hashes(conn) == before


def test_next_month_updates_only_what_changed(conn, seeds):
    load_month(conn, seeds, "month_000")
    results = load_month(conn, seeds, "month_001")
    # users.csv and subscriptions.csv are byte-identical between the months; labels flip for 2652 users.
    assert (results["users"].updated, results["subscriptions"].updated) == (0, 0)
    assert (results["labels"].updated, results["labels"].unchanged) == (2652, ROWS - 2652)
    assert conn.execute("SELECT count(*) FROM labels WHERE churn_label").fetchone()[0] == FEBRUARY_CHURNERS


def test_a_changed_file_updates_exactly_the_changed_rows(conn, seeds, tmp_path):
    load_month(conn, seeds, "month_000")
    lines = (seeds / "month_000" / "usage_agg_30d.csv").read_text().splitlines(keepends=True)
    changed_users = []
    for index in (1, 500, ROWS):  # first, middle and last data line
        fields = lines[index].rstrip("\n").split(",")
        fields[4] = str(int(fields[4]) + 1)  # skips_7d
        changed_users.append(fields[0])
        lines[index] = ",".join(fields) + "\n"
    path = tmp_path / "usage_agg_30d.csv"
    path.write_text("".join(lines))

    result = apply_file(conn, table("usage_agg_30d"), path)

    assert (result.inserted, result.updated, result.unchanged) == (0, 3, ROWS - 3)
    rows = conn.execute("SELECT user_id, skips_7d FROM usage_agg_30d WHERE user_id = ANY(%s) ORDER BY user_id",
                        (changed_users,)).fetchall()
    originals = {line.split(",")[0]: int(line.split(",")[4]) for line in
                 (seeds / "month_000" / "usage_agg_30d.csv").read_text().splitlines()[1:]}
    assert rows == sorted((user, originals[user] + 1) for user in changed_users)


def test_new_users_are_inserted(conn, seeds, tmp_path):
    load_month(conn, seeds, "month_000")
    header, first, *_ = (seeds / "month_000" / "users.csv").read_text().splitlines()
    path = tmp_path / "users.csv"
    path.write_text(f"{header}\n{first}\nNEW-0001,2024-01-15,Female,False,True,False\n")
    result = apply_file(conn, table("users"), path)
    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 1)
    assert conn.execute("SELECT signup_date::text FROM users WHERE user_id = 'NEW-0001'").fetchone() == ("2024-01-15",)


def test_staging_is_per_run_and_a_stale_one_is_dropped(conn, seeds):
    """Each run stages in a schema of its own; publish drops it; one nobody wrote to for a day goes at the next setup."""
    from psycopg import sql

    from streamflow import staging

    fresh, stale = staging.schema_for("manual__fresh"), staging.schema_for("manual__stale")
    assert fresh != stale
    for schema in (fresh, stale):
        stage.stage_file(conn, schema, table("users"), seeds / "month_000" / "users.csv")
    conn.execute(sql.SQL("UPDATE {} SET staged_at = now() - interval '25 hours'").format(
        staging.table_in(stale, staging.MANIFEST)))
    conn.commit()

    assert staging.drop_stale(conn) == [stale]

    assert staging.manifest(conn, fresh)["users"]["rows_in_file"] == ROWS
    assert staging.manifest(conn, stale) == {}
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)  # staging never touches the live table
