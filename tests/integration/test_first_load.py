"""A first load (six empty live tables) sets the keys aside and builds them once after the insert.

What must hold: the live tables end with exactly the keys (names, definitions, NOT NULL, indexes)
they had; a month whose rows break a key publishes nothing and leaves the keys in place; keys of
another shape than sql/001's are left alone (the row-by-row path).
"""

from __future__ import annotations

import psycopg
import pytest

from streamflow import pipeline, snapshots, staging
from streamflow.registry import TABLES
from streamflow.run import RunMonth
from streamflow_dev.run_month import run_month
from tests.golden import ROWS


def catalogue(conn) -> dict[str, list[tuple]]:
    """Each live table's constraints (name, kind, definition, validated), indexes and NOT NULL columns."""
    found = {}
    for t in TABLES:
        constraints = conn.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
            " WHERE conrelid = %s::regclass ORDER BY conname", (t.name,)).fetchall()
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
                               (t.name,)).fetchall()
        not_null = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                                " AND attnotnull ORDER BY attname", (t.name,)).fetchall()
        found[t.name] = [*constraints, *indexes, *not_null]
    return found


def key_oids(conn) -> set[int]:
    """The catalogue rows of the keys: a key dropped and added again gets a new one."""
    return {oid for (oid,) in conn.execute(
        "SELECT oid FROM pg_constraint WHERE contype IN ('p', 'f') AND conrelid = ANY(%s::regclass[])",
        ([t.name for t in TABLES],)).fetchall()}


def test_a_first_load_ends_with_exactly_the_keys_it_began_with(conn):
    before, before_oids = catalogue(conn), key_oids(conn)

    published = run_month(conn, RunMonth.named("month_000", "test__first"))

    assert {(r["method"], r["inserted"]) for r in published["tables"].values()} == {("bulk", ROWS)}
    assert catalogue(conn) == before
    assert key_oids(conn).isdisjoint(before_oids)  # rebuilt, not kept: the bulk path was taken
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="labels_user_id_fkey"):
        conn.execute("INSERT INTO labels (user_id, churn_label) VALUES ('no-such-user', true)")  # enforced again
    conn.rollback()
    snapshots.stamp(conn, "2024-01-31")
    nextmonth = run_month(conn, RunMonth.named("month_001", "test__next"))
    assert {r["method"] for r in nextmonth["tables"].values()} == {"merge"}


def test_a_first_load_whose_rows_break_a_key_publishes_nothing_and_keeps_the_keys(conn):
    """The contract gate and the audit stop such rows first: here a user unknown to users is put into the
    staged labels after staging, so that only the rebuilt foreign key can refuse it."""
    from psycopg import sql

    month = RunMonth.named("month_000", "test__broken")
    for t in TABLES:
        pipeline.stage_table(conn, t.name, month)
    conn.execute(sql.SQL("INSERT INTO {} (user_id, churn_label) VALUES ('GHOST-0001', true)").format(
        staging.table_in(staging.schema_for("test__broken"), "labels")))
    conn.commit()
    before = catalogue(conn)

    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        pipeline.publish_month(conn, month)

    assert "labels_user_id_fkey" in str(refused.value)
    assert "(user_id)=(GHOST-0001)" in refused.value.diag.message_detail
    conn.rollback()
    assert catalogue(conn) == before
    assert [conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES] == [0] * len(TABLES)


def test_keys_of_another_shape_are_left_in_place(conn):
    """Another table referencing users: users_pkey cannot be dropped, so no key is; the load still lands."""
    conn.execute("CREATE TABLE watchlist (user_id TEXT REFERENCES users (user_id))")
    conn.commit()
    before_oids = key_oids(conn)

    published = run_month(conn, RunMonth.named("month_000", "test__shaped"))

    assert {r["inserted"] for r in published["tables"].values()} == {ROWS}
    assert key_oids(conn) == before_oids
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'watchlist'::regclass"
                        " AND contype = 'f'").fetchone() == (1,)
