"""One DagBag for the whole session, built the way the dag-processor builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="session")
def ingest_month(dag_bag):
    return dag_bag.dags["ingest_month"]
