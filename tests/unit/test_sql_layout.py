"""Every file under sql/ is one that something runs: the setup's folders, or a query a module reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import streamflow
from streamflow import queries, schema, snapshots
from streamflow.registry import SNAPSHOTTED
from streamflow.settings import SQL_DIR


def test_every_sql_file_is_in_a_folder_its_loader_reads():
    loaded = {*schema.definition_files(), *schema.migration_files(), *queries.QUERIES_DIR.glob("*.sql")}
    assert sorted(path.relative_to(SQL_DIR) for path in SQL_DIR.rglob("*.sql") if path not in loaded) == []


def test_migrations_have_distinct_numbers():
    numbers = [path.name[:4] for path in schema.migration_files()]
    assert len(numbers) == len(set(numbers)), numbers


def test_definitions_run_in_their_shared_numbering_schema_first():
    names = [schema.named(path) for path in schema.definition_files()]
    assert names[:3] == ["schema/000_schema_migrations.sql", "schema/001_live_tables.sql",
                         "schema/002_snapshot_table.sql"]
    assert names.index("functions/005_training_set.sql") < names.index("schema/006_training_examples.sql")
    assert [name.split("/")[1][:3] for name in names] == sorted(name.split("/")[1][:3] for name in names)


def test_snapshot_tables_are_rendered_from_the_registry():
    rendered = [statement.as_string(None) for statement in schema.definitions(schema.SNAPSHOT_TABLE_DDL)]
    assert len(rendered) == len(SNAPSHOTTED)
    for table, text in zip(SNAPSHOTTED, rendered, strict=True):
        assert f'CREATE TABLE IF NOT EXISTS "{table.snapshot_table}" (' in text
        assert ", ".join(f'"{name}"' for name in table.snapshot_columns) in re.sub(r" (INT|NUMERIC|BOOLEAN|TEXT|DATE)", "",
                                                                               text)


@pytest.mark.parametrize("table", SNAPSHOTTED, ids=lambda table: table.name)
def test_the_stamp_leaves_no_placeholder_and_binds_its_values(table):
    statements = snapshots.render_stamp_sql(table)
    assert len(statements) == 3
    for statement in statements:
        assert not re.search(r"[{}]", statement), statement
        assert set(re.findall(r"%\((\w+)\)s", statement)) <= set(snapshots.stamp_params(table, "2024-01-31"))
    assert f'INSERT INTO "{table.snapshot_table}"' in statements[1]


PACKAGE = Path(streamflow.__file__).parent
STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|MERGE|WITH|CREATE|ALTER|DROP|LOCK|COPY)\b")


def string_literals(path: Path) -> list[ast.Constant]:
    """The module's string constants, docstrings left out (their prose may quote SQL)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_every_query_file_is_named_by_a_module():
    named = {node.value for path in PACKAGE.glob("*.py") for node in string_literals(path)}
    assert sorted(path.stem for path in queries.QUERIES_DIR.glob("*.sql") if path.stem not in named) == []


def test_every_query_file_says_what_it_does():
    assert [path.name for path in queries.QUERIES_DIR.glob("*.sql")
            if not path.read_text(encoding="utf-8").startswith("-- ")] == []


def test_no_module_writes_a_statement_over_several_lines():
    """A statement longer than a line is a file under sql/queries/ (docs/sql.md): a string literal
    (adjacent ones are one) that starts like a statement and spans lines of Python is one that is not."""
    inline = [f"{path.name}:{node.lineno}: {node.value[:60]!r}"
              for path in sorted(PACKAGE.glob("*.py"))
              for node in string_literals(path) if node.end_lineno > node.lineno and STATEMENT.match(node.value)]
    assert inline == []
