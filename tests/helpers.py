"""Assertions shared by the integration tests."""

from __future__ import annotations

from streamflow.registry import TABLES


def table_hash(conn, table_name: str) -> str:
    """md5 of a table's whole content in key order: equal hashes mean identical tables."""
    from psycopg import sql

    return conn.execute(sql.SQL("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} AS t")
                        .format(sql.Identifier(table_name))).fetchone()[0]


def live_hashes(conn) -> dict[str, str]:
    """Content hash of every live table."""
    return {t.name: table_hash(conn, t.name) for t in TABLES}


def load_month(conn, seeds_dir, month: str) -> dict:
    """Upsert all six files of a month (users first), as the DAG does; return results by table."""
    from streamflow import upsert

    return {t.name: upsert.upsert_file(conn, t, seeds_dir / month / t.file_name) for t in TABLES}
