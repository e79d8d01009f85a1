"""Schema setup runs before every DAG run: it must not wait on readers of the tables it ensures."""

from __future__ import annotations

from streamflow.registry import SNAPSHOTTED, TABLES
from streamflow.schema import apply_schema
from tests.conftest import connect

BOOKKEEPING = ("validation_results", "ingestion_ledger")


def test_setup_does_not_wait_for_open_readers(warehouse):
    with connect(warehouse) as reader, connect(warehouse) as setup:
        for name in (*(t.name for t in TABLES), *(t.snapshot_table for t in SNAPSHOTTED), *BOOKKEEPING):
            reader.execute(f'SELECT count(*) FROM "{name}"')  # a transaction left open, holding AccessShareLock
        setup.execute("SET lock_timeout = '2s'")  # would raise LockNotAvailable if setup needed more
        assert apply_schema(setup)
        locks = reader.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]
        assert locks == 0
