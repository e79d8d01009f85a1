"""The DDL in sql/ and the table registry describe the same tables; the live DDL is the course's."""

from __future__ import annotations

from pathlib import Path

import psycopg.sql
import pytest

from streamflow.registry import SNAPSHOTTED, TABLES, quote_ident
from streamflow.settings import SQL_DIR

PG_TYPES = {"text": "text", "date": "date", "boolean": "boolean", "integer": "integer", "numeric": "numeric"}
#: The course's live-table DDL, vendored unchanged: sql/schema/001 must stay the course's schema verbatim.
SPEC = Path(__file__).resolve().parents[1] / "spec" / "001_schema.sql"


def columns_of(conn, name: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (name,)).fetchall()


def test_live_tables_match_the_registry(conn):
    for t in TABLES:
        assert columns_of(conn, t.name) == [(c.name, PG_TYPES[c.pg_type]) for c in t.columns], t.name


def test_snapshot_tables_match_the_registry(conn):
    for t in SNAPSHOTTED:
        expected = [("user_id", "text"), ("as_of", "date")]
        expected += [(name, PG_TYPES[t.column(name).pg_type]) for name in t.snapshot_columns]
        assert columns_of(conn, t.snapshot_table) == expected, t.snapshot_table


def test_a_second_setup_changes_neither_the_catalogue_nor_the_rows_nor_the_migration_record(conn):
    from streamflow.schema import apply_schema
    from tests.integration.test_schema_migrations import catalogue

    conn.execute("INSERT INTO users (user_id, user_gender) VALUES ('0001-KEEP', 'Female')")
    conn.commit()
    before = catalogue(conn)
    record = conn.execute("SELECT filename, checksum, applied_at FROM schema_migrations ORDER BY filename").fetchall()
    apply_schema(conn)
    conn.commit()
    assert catalogue(conn) == before
    assert conn.execute("SELECT filename, checksum, applied_at FROM schema_migrations ORDER BY filename"
                        ).fetchall() == record
    assert conn.execute("SELECT user_id, user_gender FROM users").fetchall() == [("0001-KEEP", "Female")]


def test_live_ddl_is_the_course_schema_verbatim():
    assert (SQL_DIR / "schema" / "001_live_tables.sql").read_text() == SPEC.read_text()


@pytest.mark.parametrize("name", ["users", 'we"ird', "snake_case_1"])
def test_quote_ident_matches_psycopg(conn, name):
    assert quote_ident(name) == psycopg.sql.Identifier(name).as_string(conn)
