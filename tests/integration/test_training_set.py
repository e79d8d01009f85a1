"""The snapshot tasks' asset extras and the training set they trigger, against the real months.

What the DAGs call, without Airflow: `pipeline.stamp_snapshot` (one per snapshot table, the
event's extra), `training.announced_as_ofs` (the as_of of the events), `training.build`.
"""

from __future__ import annotations

import hashlib

import pytest

from streamflow import pipeline, training
from streamflow.registry import SNAPSHOTTED
from streamflow.run import RunMonth
from streamflow.training import TrainingSetRefused
from streamflow_dev.run_month import run_month
from tests.golden import CHURNERS, FEBRUARY_CHURNERS, JANUARY_CHURNERS, ROWS


def load(conn, month: str) -> RunMonth:
    run = RunMonth.named(month, f"test__{month}")
    run_month(conn, run)
    return run


def stamp_all(conn, run: RunMonth) -> dict[str, dict]:
    """Each snapshot task's event extra, by asset URI (what the training_set DAG is handed)."""
    extras = {t.snapshot_asset_uri: pipeline.stamp_snapshot(conn, t.name, run)
              for t in SNAPSHOTTED}
    conn.commit()
    return extras


def examples(conn, as_of: str) -> list[tuple]:
    return conn.execute("SELECT * FROM training_examples WHERE as_of = %s ORDER BY user_id", (as_of,)).fetchall()


def test_stamp_extras_say_what_was_stamped_and_when_nothing_could_be(conn, seeds):
    january = load(conn, "month_000")

    first = stamp_all(conn, january)
    assert {uri.rsplit("/", 1)[1] for uri in first} == {t.snapshot_table for t in SNAPSHOTTED}
    for t in SNAPSHOTTED:
        extra = first[t.snapshot_asset_uri]
        assert extra["snapshot_table"] == t.snapshot_table
        assert (extra["as_of"], extra["month"], extra["rows"]) == ("2024-01-31", "month_000", ROWS)
        assert (extra["inserted"], extra["updated"], extra["dropped"], extra["changed"], extra["frozen"]) == (
            ROWS, 0, 0, True, False)
        assert extra["validation"] == {"tables": 0, "expectations": 0, "passed": 0, "failed": 0,
                                       "warnings": 0}  # none recorded

    again = stamp_all(conn, january)  # the latest month re-run with the same files
    assert {(e["rows"], e["changed"], e["frozen"]) for e in again.values()} == {(ROWS, False, False)}

    load(conn, "month_001")
    replay = stamp_all(conn, january)  # an older month re-run: its snapshots are frozen
    assert {(e["rows"], e["inserted"] + e["updated"] + e["dropped"], e["changed"], e["frozen"])
            for e in replay.values()} == {(ROWS, 0, False, True)}


def test_events_name_the_as_ofs_to_build_oldest_first():
    uris = [t.snapshot_asset_uri for t in SNAPSHOTTED]
    assert training.announced_as_ofs({uri: [{"as_of": "2024-01-31"}] for uri in uris}) == ["2024-01-31"]
    # The DAG paused while two months landed: one run, both months, oldest first.
    both = {uri: [{"as_of": "2024-02-29"}, {"as_of": "2024-01-31"}] for uri in uris}
    assert training.announced_as_ofs(both) == ["2024-01-31", "2024-02-29"]
    # Some assets only for one as_of: still named, the warehouse decides (next test).
    mixed = {uri: [{"as_of": "2024-01-31"}] for uri in uris}
    mixed[uris[-1]] = [{"as_of": "2024-02-29"}]
    assert training.announced_as_ofs(mixed) == ["2024-01-31", "2024-02-29"]
    with pytest.raises(TrainingSetRefused, match="no as_of"):
        training.announced_as_ofs({uri: [{}] for uri in uris})


def test_a_partly_announced_month_does_not_block_a_complete_one(conn, seeds):
    stamp_all(conn, load(conn, "month_000"))
    # January is complete in the warehouse; March was announced by some assets but never stamped.
    built = training.build_announced(conn, ["2024-01-31", "2024-03-31"], "manual__partial")
    assert [(m["as_of"], m["rows"]) for m in built] == [("2024-01-31", ROWS)]
    assert conn.execute("SELECT DISTINCT as_of::text FROM training_examples").fetchall() == [("2024-01-31",)]
    with pytest.raises(TrainingSetRefused, match="no training set built: no training examples at as_of 2024-03-31"):
        training.build_announced(conn, ["2024-03-31"], "manual__none")


def test_training_set_replaces_one_as_of_and_january_does_not_depend_on_february(conn, seeds):
    stamp_all(conn, load(conn, "month_000"))
    january = training.build(conn, "2024-01-31", "run_jan")
    january_rows = examples(conn, "2024-01-31")

    stamp_all(conn, load(conn, "month_001"))
    february = training.build(conn, "2024-02-29", "run_feb")
    rebuilt = training.build(conn, "2024-01-31", "run_jan_again")  # after February is loaded

    for manifest, as_of in ((january, "2024-01-31"), (february, "2024-02-29")):
        assert (manifest["as_of"], manifest["snapshot_as_of"], manifest["rows"], manifest["churners"]) == (
            as_of, as_of, ROWS, CHURNERS[as_of])
    assert rebuilt["content_md5"] == january["content_md5"] != february["content_md5"]
    assert examples(conn, "2024-01-31") == january_rows
    assert conn.execute("SELECT as_of::text, count(*), count(*) FILTER (WHERE churn_label) FROM training_examples"
                        " GROUP BY as_of ORDER BY as_of").fetchall() == [
        ("2024-01-31", ROWS, JANUARY_CHURNERS), ("2024-02-29", ROWS, FEBRUARY_CHURNERS)]
    # The examples are training_set() frozen, and the hash is over exactly them.
    assert conn.execute("SELECT count(*) FROM ((SELECT * FROM training_set('2024-02-29')) EXCEPT ALL"
                        " (SELECT * FROM training_examples WHERE as_of = '2024-02-29')) AS diff").fetchone() == (0,)
    # The hash is over the rows' text in user_id byte order, whatever the database's collation.
    rows = sorted(conn.execute("SELECT user_id, t::text FROM training_examples AS t WHERE as_of = '2024-02-29'"
                               ).fetchall(), key=lambda row: row[0].encode())
    assert hashlib.md5("\n".join(text for _, text in rows).encode()).hexdigest() == february["content_md5"]
    assert conn.execute("SELECT run_id, as_of::text, rows FROM training_set_manifest ORDER BY id").fetchall() == [
        ("run_jan", "2024-01-31", ROWS), ("run_feb", "2024-02-29", ROWS), ("run_jan_again", "2024-01-31", ROWS)]


def test_an_as_of_without_its_snapshots_is_refused_and_writes_nothing(conn, seeds):
    stamp_all(conn, load(conn, "month_000"))
    training.build(conn, "2024-01-31", "run_jan")
    before = conn.execute("SELECT count(*) FROM training_examples").fetchone()
    conn.execute("DELETE FROM usage_agg_30d_snapshots WHERE as_of = '2024-01-31'")  # as if one stamp had failed
    conn.commit()

    with pytest.raises(TrainingSetRefused, match="no training examples at as_of 2024-01-31"):
        training.build(conn, "2024-01-31", "run_incomplete")
    with pytest.raises(TrainingSetRefused, match="no training examples at as_of 2024-03-31"):
        training.build(conn, "2024-03-31", "run_never_stamped")

    assert conn.execute("SELECT count(*) FROM training_examples").fetchone() == before
    assert conn.execute("SELECT run_id FROM training_set_manifest").fetchall() == [("run_jan",)]
