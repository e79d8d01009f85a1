"""Snapshot tables partitioned by as_of, the catalogue of stamps, and what a stamp or a training set reads.

What keeps a month's cost flat whatever the history: each stamped as_of is one
partition, what is stamped is read from `snapshot_stamps`, the planner gets statistics for a new
partition in the stamp's own transaction, and `training_set(as_of)` reads that month's partitions only.
"""

from __future__ import annotations

import json

from psycopg import sql

from streamflow import snapshots
from streamflow.registry import SNAPSHOTTED
from streamflow.schema import apply_schema
from tests.integration.test_month_shapes import ROWS, apply_month, months, snapshot_hashes  # noqa: F401 - fixture

JANUARY, FEBRUARY = "2024-01-31", "2024-02-29"


def partitions(conn) -> dict[str, list[tuple[str, str]]]:
    """Each snapshot table's partitions with their bounds, in name order."""
    found = {}
    for t in SNAPSHOTTED:
        found[t.snapshot_table] = conn.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) FROM pg_inherits"
            " JOIN pg_class AS child ON child.oid = inhrelid WHERE inhparent = %s::regclass ORDER BY 1",
            (t.snapshot_table,)).fetchall()
    return found


def relations(node: dict) -> set[str]:
    """The tables a plan node reads, itself and below."""
    found = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= relations(child)
    return found


def nested_loops_over_tables(node: dict) -> list[tuple[str, ...]]:
    """Nested-loop joins whose both sides read tables (not the one-row CTEs): (join type, tables...)."""
    found = []
    children = node.get("Plans", [])
    if node["Node Type"] == "Nested Loop" and len(children) == 2 and all(relations(c) for c in children):
        found.append((node.get("Join Type"), *sorted(relations(node))))
    for child in children:
        found += nested_loops_over_tables(child)
    return found


def catalogue(conn) -> list[tuple]:
    return conn.execute("SELECT snapshot_table, as_of::text, partition_name, rows FROM snapshot_stamps"
                        " ORDER BY as_of, snapshot_table").fetchall()


def test_each_month_is_one_partition_catalogued_with_statistics(conn, months):  # noqa: F811 - fixture
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")

    for name, found in partitions(conn).items():
        assert found == [
            (f"{name}_2024_01", "FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')"),
            (f"{name}_2024_02", "FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')")]
        # A partition holds its month only: the rows of each as_of are all in their month's partition.
        for partition, _ in found:
            assert conn.execute(sql.SQL("SELECT count(*), min(as_of) = max(as_of) FROM {}").format(
                sql.Identifier(partition))).fetchone() == (ROWS, True)
    assert catalogue(conn) == sorted(
        [(t.snapshot_table, as_of, f"{t.snapshot_table}_{suffix}", ROWS)
         for t in SNAPSHOTTED for as_of, suffix in ((JANUARY, "2024_01"), (FEBRUARY, "2024_02"))],
        key=lambda row: (row[1], row[0]))
    # The stamp analysed each new partition itself: the planner knows its size without autovacuum.
    analysed = conn.execute("SELECT relname, reltuples FROM pg_class WHERE relname LIKE '%\\_snapshots\\_2024\\_0_'"
                            " ORDER BY relname").fetchall()
    assert len(analysed) == 10
    assert {tuples for _, tuples in analysed} == {ROWS}


def test_a_restamp_with_nothing_changed_writes_nothing(conn, months):  # noqa: F811 - fixture
    apply_month(conn, "month_000")
    before = snapshot_hashes(conn, JANUARY)
    stamped_at = conn.execute("SELECT array_agg(last_stamped_at ORDER BY snapshot_table) FROM snapshot_stamps"
                              ).fetchone()
    versions = conn.execute("SELECT array_agg(xmin::text ORDER BY user_id) FROM labels_snapshots").fetchone()

    again = snapshots.stamp(conn, JANUARY)
    conn.commit()

    assert {row[2:] for row in again.values()} == {(0, 0, 0, False)}
    assert snapshot_hashes(conn, JANUARY) == before
    assert conn.execute("SELECT array_agg(xmin::text ORDER BY user_id) FROM labels_snapshots").fetchone() == versions
    assert conn.execute("SELECT array_agg(last_stamped_at ORDER BY snapshot_table) FROM snapshot_stamps"
                        ).fetchone() == stamped_at
    assert [name for name, _ in partitions(conn)["labels_snapshots"]] == ["labels_snapshots_2024_01"]


def test_training_set_and_a_restamp_read_one_month(conn, months):  # noqa: F811 - fixture
    apply_month(conn, "month_000")
    apply_month(conn, "month_001")

    plan = json.dumps(conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM training_set(%s)", (FEBRUARY,)).fetchone()[0])
    scanned = {t.snapshot_table: [p for p in (f"{t.snapshot_table}_2024_01", f"{t.snapshot_table}_2024_02")
                                  if f'"{p}"' in plan] for t in SNAPSHOTTED}
    assert scanned == {t.snapshot_table: [f"{t.snapshot_table}_2024_02"] for t in SNAPSHOTTED}

    labels = next(t for t in SNAPSHOTTED if t.name == "labels")
    begin, stamp, _ = snapshots.render_stamp_sql(labels)
    with conn.transaction(force_rollback=True):
        conn.execute(begin, snapshots.stamp_params(labels, FEBRUARY))
        plan = json.dumps(conn.execute("EXPLAIN (FORMAT JSON) " + stamp, snapshots.stamp_params(labels, FEBRUARY),
                                       prepare=False).fetchone()[0])
    assert '"labels_snapshots_2024_02"' in plan
    assert '"labels_snapshots_2024_01"' not in plan
    # The planner knows the partition's size: it does not join users to users in a nested loop (quadratic),
    # as it did when the new as_of had no statistics.
    assert nested_loops_over_tables(json.loads(plan)[0]["Plan"]) == []


def test_snapshot_tables_from_before_partitioning_are_converted(conn):
    """A warehouse stamped by the old schema: its rows move into monthly partitions and the catalogue."""
    name = "payments_agg_90d_snapshots"
    old = [("u1", JANUARY, 0), ("u2", JANUARY, 1), ("u1", FEBRUARY, 2)]
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(name)))
        conn.execute("DELETE FROM snapshot_stamps")
        conn.execute("DELETE FROM schema_migrations WHERE filename ~ '^000[34]_'")  # a warehouse that never had them
        conn.execute(sql.SQL("CREATE TABLE {} (user_id TEXT, as_of DATE, failed_payments_90d INT,"
                             " PRIMARY KEY (user_id, as_of))").format(sql.Identifier(name)))
        conn.cursor().executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(sql.Identifier(name)), old)

    apply_schema(conn)

    assert conn.execute("SELECT relkind FROM pg_class WHERE relname = %s", (name,)).fetchone() == ("p",)
    assert [p for p, _ in partitions(conn)[name]] == [f"{name}_2024_01", f"{name}_2024_02"]
    assert conn.execute(sql.SQL("SELECT user_id, as_of::text, failed_payments_90d FROM {} ORDER BY as_of, user_id")
                        .format(sql.Identifier(name))).fetchall() == [
        ("u1", JANUARY, 0), ("u2", JANUARY, 1), ("u1", FEBRUARY, 2)]
    assert catalogue(conn) == [(name, JANUARY, f"{name}_2024_01", 2), (name, FEBRUARY, f"{name}_2024_02", 1)]
    assert conn.execute("SELECT to_regclass(%s)", (f"{name}_unpartitioned",)).fetchone() == (None,)
