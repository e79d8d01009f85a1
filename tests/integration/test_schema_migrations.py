"""Migrations: a warehouse set up by an older version upgrades to exactly what a new one is created as.

An old warehouse is built the old way (that commit's numbered sql/ files, applied in order, as its
apply_schema did), then set up by today's `apply_schema`; its catalogue (tables, columns,
constraints, indexes, functions) must equal the catalogue of a database set up fresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import subprocess
import uuid

import pytest

from streamflow import schema
from tests.conftest import ROOT, connect, drop_database

#: Older versions to upgrade from: the last one before the migration record (the schema then applied
#: its upgrades in DO blocks on every setup), one from before the checks against history (no
#: severity, figures, accepted_checks, user sets) and one from before the snapshot tables were
#: partitioned (plain tables, no catalogue of stamps). With each, whether its columns end in the
#: fresh order too: a column an older version did not have is appended by its migration (ADD
#: COLUMN), where a fresh table has it in place; nothing reads these tables by position.
OLD_VERSIONS = (("178bab8", True), ("bd5514d", False), ("09b1f0e", False))

CATALOGUE = {
    "tables": """
        SELECT c.relname, c.relkind, c.relpersistence, pg_get_partkeydef(c.oid)
        FROM pg_class AS c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
               a.attidentity, a.attgenerated, a.attstorage, a.attcollation
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "column_order": """
        SELECT c.relname, array_agg(a.attname ORDER BY a.attnum)
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped GROUP BY c.relname""",
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        WHERE c.relnamespace = current_schema()::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc AS p WHERE p.pronamespace = current_schema()::regnamespace""",
    "sequences": """
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'S'""",
}


def catalogue(conn, column_order: bool = True) -> dict[str, list[tuple]]:
    return {part: sorted(conn.execute(query).fetchall(), key=repr) for part, query in CATALOGUE.items()
            if column_order or part != "column_order"}


def differences(upgraded: dict, fresh: dict) -> dict[str, dict[str, list]]:
    """What only the upgraded database has, and what only the fresh one has, part by part."""
    return {part: {"upgraded only": [row for row in upgraded[part] if row not in fresh[part]],
                   "fresh only": [row for row in fresh[part] if row not in upgraded[part]]}
            for part in upgraded if upgraded[part] != fresh[part]}


def old_ddl(commit: str) -> list[tuple[str, str]]:
    """(name, text) of the numbered DDL files under sql/ at `commit`, in the order they were applied."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    listed = subprocess.run(["git", "ls-tree", "--name-only", commit, "sql/"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0:
        pytest.skip(f"commit {commit} is not in this clone's history")
    names = sorted(name for name in listed.stdout.split() if re.fullmatch(r"sql/[0-9]{3}_.*\.sql", name))
    return [(name, subprocess.run(["git", "show", f"{commit}:{name}"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout) for name in names]


@contextlib.contextmanager
def database(server, prefix: str):
    """A new, empty database on `server`; yields its settings, dropped on exit."""
    from streamflow_dev import pgserver

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    pgserver.ensure_databases(server, name)
    try:
        yield dataclasses.replace(server, database=name)
    finally:
        drop_database(server, name)


@pytest.fixture(scope="module")
def fresh_catalogue(pg_server):
    with database(pg_server, "fresh_") as settings, connect(settings) as conn:
        schema.apply_schema(conn)
        conn.commit()
        return catalogue(conn)


@pytest.mark.parametrize(("commit", "same_column_order"), OLD_VERSIONS)
def test_an_old_warehouse_upgrades_to_the_catalogue_of_a_new_one(pg_server, fresh_catalogue, commit,
                                                                  same_column_order):
    with database(pg_server, "old_") as settings, connect(settings) as conn:
        with conn.transaction():
            for _name, text in old_ddl(commit):
                conn.execute(text)
        # training_set(), written by hand then, rendered from the registry now: the same columns, in order.
        signature = "SELECT pg_get_function_result('training_set'::regproc)"
        (written,) = conn.execute(signature).fetchone()
        ran = schema.apply_schema(conn)
        assert conn.execute(signature).fetchone() == (written,)
        assert ran == [schema.named(path) for path in (*schema.definition_files(), *schema.migration_files())]
        fresh = {part: rows for part, rows in fresh_catalogue.items() if same_column_order or part != "column_order"}
        assert differences(catalogue(conn, same_column_order), fresh) == {}
        recorded = conn.execute("SELECT filename, baselined FROM schema_migrations ORDER BY filename").fetchall()
        assert recorded == [(path.name, False) for path in schema.migration_files()]
        # Upgraded once: the next setup runs the definitions only, and changes nothing.
        assert schema.apply_schema(conn) == [schema.named(path) for path in schema.definition_files()]
        assert catalogue(conn, same_column_order) == fresh


def test_a_new_warehouse_records_its_migrations_as_baselined(conn):
    recorded = conn.execute("SELECT filename, checksum, baselined FROM schema_migrations ORDER BY filename").fetchall()
    assert recorded == [(path.name, schema.checksum(path), True) for path in schema.migration_files()]


def test_a_pending_migration_runs_once_in_order(conn, tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, folder)
    (folder / "9001_first.sql").write_text("CREATE TABLE migrated (step INT);\nINSERT INTO migrated VALUES (1);\n")
    (folder / "9002_second.sql").write_text("INSERT INTO migrated SELECT max(step) + 1 FROM migrated;\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", folder)
    monkeypatch.setattr(schema, "named", lambda path: path.name)

    assert schema.apply_schema(conn)[-2:] == ["9001_first.sql", "9002_second.sql"]
    assert schema.apply_schema(conn)[-1] == schema.definition_files()[-1].name
    assert conn.execute("SELECT array_agg(step ORDER BY step) FROM migrated").fetchone() == ([1, 2],)
    assert conn.execute("SELECT baselined FROM schema_migrations WHERE filename LIKE '900%'").fetchall() == [
        (False,), (False,)]


def test_a_changed_migration_stops_the_setup_naming_the_file(conn):
    first = schema.migration_files()[0]
    conn.execute("UPDATE schema_migrations SET checksum = 'f00' WHERE filename = %s", (first.name,))
    conn.commit()
    with pytest.raises(schema.MigrationChanged, match=re.escape(f"migrations/{first.name} has changed")):
        schema.apply_schema(conn)
    # Nothing of that setup stays: it ran in one transaction.
    assert conn.execute("SELECT checksum FROM schema_migrations WHERE filename = %s", (first.name,)).fetchone() == (
        "f00",)


def test_the_first_setup_after_the_last_old_version_waits_for_no_reader(pg_server, monkeypatch):
    """Deployed over 178bab8's warehouse, the first setup records the migrations (all of them find
    nothing to change there) without a lock an open reader would block: the rule of test_schema_locks."""
    monkeypatch.setattr(schema, "LOCK_TIMEOUT", "1s")
    with database(pg_server, "old_") as settings, connect(settings) as old, connect(settings) as reader:
        with old.transaction():
            for _name, text in old_ddl(OLD_VERSIONS[0][0]):
                old.execute(text)
        tables = reader.execute("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
                                " AND relkind IN ('r', 'p')").fetchall()
        for (name,) in tables:
            reader.execute(f'SELECT count(*) FROM "{name}"')  # a transaction left open, holding AccessShareLock
        assert schema.apply_schema(old)[-len(schema.migration_files()):] == [
            schema.named(path) for path in schema.migration_files()]
