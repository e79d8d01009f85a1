"""One DagBag for the whole session, built the way the dag-processor builds it; the compose files, parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.compose_files import Stack, load_stack

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="session")
def ingest_month(dag_bag):
    return dag_bag.dags["ingest_month"]


# The compose files parsed once per test module (tests/dags/compose_files.py); the review checks'
# mutation tests break deep copies, never these.
@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack()


@pytest.fixture(scope="module")
def compose(stack) -> dict:
    return stack.base


@pytest.fixture(scope="module")
def services(stack) -> dict:
    return stack.services


@pytest.fixture(scope="module")
def dotenv(stack) -> dict[str, str]:
    return stack.dotenv
