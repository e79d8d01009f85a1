"""Schema setup runs before every DAG run: it must not wait on readers of the tables it ensures."""

from __future__ import annotations

from streamflow import schema
from streamflow.registry import SNAPSHOTTED, TABLES
from tests.conftest import connect

BOOKKEEPING = ("validation_results", "ingestion_ledger", "training_examples", "training_set_manifest")


def test_setup_does_not_wait_for_open_readers(warehouse, monkeypatch):
    # Any lock setup had to wait for would raise LockNotAvailable after 1 s.
    monkeypatch.setattr(schema, "LOCK_TIMEOUT", "1s")
    with connect(warehouse) as reader, connect(warehouse) as setup:
        for name in (*(t.name for t in TABLES), *(t.snapshot_table for t in SNAPSHOTTED), *BOOKKEEPING):
            reader.execute(f'SELECT count(*) FROM "{name}"')  # a transaction left open, holding AccessShareLock
        assert schema.apply_schema(setup) == [schema.named(path) for path in schema.definition_files()]
