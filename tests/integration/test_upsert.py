"""The loader on the real files: counts, NULLs, exact decimals, idempotence, minimal updates."""

from __future__ import annotations

import csv

import pytest

from streamflow import upsert
from streamflow.errors import ContractViolation
from streamflow.registry import TABLES, table
from tests.helpers import apply_file, live_hashes, load_month

ROWS = 7043


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


@pytest.mark.parametrize("table_name", ["users", "labels"])
def test_a_padded_key_on_first_load_is_trimmed_as_the_staged_path_does(conn, seeds, tmp_path, table_name):
    """Checked after the typed COPY, which then gives way to the checked path."""
    load_month(conn, seeds, "month_000")
    conn.execute(f"TRUNCATE {table_name} CASCADE")
    conn.commit()
    lines = (seeds / "month_000" / f"{table_name}.csv").read_text().splitlines(keepends=True)
    user = lines[3].split(",")[0]
    lines[3] = f"  {lines[3]}"
    path = tmp_path / f"{table_name}.csv"
    path.write_text("".join(lines))

    result = apply_file(conn, table(table_name), path)

    assert (result.write, result.inserted) == ("checked", ROWS)
    assert conn.execute(f"SELECT count(*) FROM {table_name} WHERE user_id <> btrim(user_id)").fetchone()[0] == 0
    assert conn.execute(f"SELECT count(*) FROM {table_name} WHERE user_id = %s", (user,)).fetchone()[0] == 1


@pytest.mark.parametrize("signup_date", ["2022-02-05", " 2022-02-05 ", ""])
def test_a_users_file_with_iso_or_blank_dates_copies_straight_in(conn, seeds, tmp_path, signup_date):
    lines = (seeds / "month_000" / "users.csv").read_text().splitlines(keepends=True)
    fields = lines[5].split(",")
    fields[1] = signup_date
    lines[5] = ",".join(fields)
    path = tmp_path / "users.csv"
    path.write_text("".join(lines))

    result = apply_file(conn, table("users"), path)

    assert (result.write, result.inserted) == ("copy", ROWS)
    stored = conn.execute("SELECT signup_date::text FROM users WHERE user_id = %s", (fields[0],)).fetchone()[0]
    assert stored == (signup_date.strip() or None)


# Files where PostgreSQL's CSV reading finds a date that is not YYYY-MM-DD but Python's csv or re
# would not: a newline inside a quoted date cell; quotes inside fields, which PostgreSQL reads as
# quoting ("a"b,c"d" is one field for it, two for Python), so that PostgreSQL's signup_date is
# "05/02/2022" where Python's is blank.
USERS_HEADER = "user_id,signup_date,user_gender,user_is_senior,has_family,has_dependents"
NOT_ISO_FOR_POSTGRESQL = {
    "newline-in-quoted-date": (USERS_HEADER, 'NEW-0001,"2022-02-05\n",Female,False,True,False'),
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
    assert conn.execute("SELECT count(*) FROM labels WHERE churn_label").fetchone()[0] == 1701


def test_a_changed_file_updates_exactly_the_changed_rows(conn, seeds, tmp_path):
    load_month(conn, seeds, "month_000")
    lines = (seeds / "month_000" / "usage_agg_30d.csv").read_text().splitlines(keepends=True)
    changed_users = []
    for index in (1, 500, 7043):  # first, middle and last data line
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
        upsert.stage_file(conn, schema, table("users"), seeds / "month_000" / "users.csv")
    conn.execute(sql.SQL("UPDATE {} SET staged_at = now() - interval '25 hours'").format(
        staging.table_in(stale, staging.MANIFEST)))
    conn.commit()

    assert staging.drop_stale(conn) == [stale]

    assert staging.manifest(conn, fresh)["users"]["rows_in_file"] == ROWS
    assert staging.manifest(conn, stale) == {}
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)  # staging never touches the live table
