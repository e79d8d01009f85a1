"""The course's checks as one command: row counts per live table, per snapshot table per as_of."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.registry import SNAPSHOTTED, TABLES

if TYPE_CHECKING:
    import psycopg


def collect(conn: psycopg.Connection) -> dict:
    """Counts the checks print; also what tests compare before and after a re-run."""
    from psycopg import sql

    live = {t.name: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t.name))).fetchone()[0]
            for t in TABLES}
    snapshots = {
        t.snapshot_table: dict(conn.execute(sql.SQL(
            "SELECT as_of::text, count(*) FROM {} GROUP BY as_of ORDER BY as_of").format(
            sql.Identifier(t.snapshot_table))).fetchall())
        for t in SNAPSHOTTED
    }
    as_of_dates = sorted({day for per_day in snapshots.values() for day in per_day})
    churners = dict(conn.execute(
        "SELECT as_of::text, count(*) FILTER (WHERE churn_label) FROM labels_snapshots GROUP BY as_of ORDER BY as_of"
    ).fetchall())
    null_plan_tv = conn.execute("SELECT count(*) FROM subscriptions WHERE plan_stream_tv IS NULL").fetchone()[0]
    return {"live": live, "snapshots": snapshots, "as_of": as_of_dates, "churners": churners,
            "subscriptions_plan_stream_tv_null": null_plan_tv, "training_sets": training_sets(conn)}


def training_sets(conn: psycopg.Connection) -> dict[str, dict]:
    """The latest build of each as_of in `training_set_manifest`: rows, churners, hash, run."""
    rows = conn.execute(
        "SELECT DISTINCT ON (as_of) as_of::text, rows, churners, content_md5, run_id FROM training_set_manifest"
        " ORDER BY as_of, id DESC").fetchall()
    return {as_of: {"rows": n, "churners": churners, "content_md5": md5, "run_id": run_id}
            for as_of, n, churners, md5, run_id in rows}


def render(found: dict) -> str:
    lines = ["Live tables (SELECT COUNT(*) FROM ...):"]
    lines += [f"  {name:<34}{count:>10}" for name, count in found["live"].items()]
    lines.append("Snapshot tables (rows per as_of):")
    for name, per_day in found["snapshots"].items():
        counts = ", ".join(f"{day}: {count}" for day, count in per_day.items()) or "empty"
        lines.append(f"  {name:<34}{counts}")
    lines.append(f"SELECT DISTINCT as_of: {', '.join(found['as_of']) or 'none'}")
    lines.append("Churners per as_of (labels_snapshots): "
                 + (", ".join(f"{d}: {n}" for d, n in found["churners"].items()) or "none"))
    lines.append(f"subscriptions rows with plan_stream_tv NULL: {found['subscriptions_plan_stream_tv_null']}")
    lines.append("Training sets (training_examples, latest build per as_of):")
    lines += [f"  {as_of}: {built['rows']} rows, {built['churners']} churners, md5 {built['content_md5']}"
              for as_of, built in found["training_sets"].items()] or ["  none"]
    return "\n".join(lines)


def training_set_mismatches(found: dict) -> list[str]:
    """Each as_of whose training set disagrees with its snapshots (row count, churners), or is missing."""
    problems = []
    for as_of in found["as_of"]:
        built = found["training_sets"].get(as_of)
        expected = (found["snapshots"]["labels_snapshots"].get(as_of), found["churners"].get(as_of))
        if built is None:
            problems.append(f"{as_of}: no training set built")
        elif (built["rows"], built["churners"]) != expected:
            problems.append(f"{as_of}: training set has {built['rows']} rows / {built['churners']} churners, "
                            f"its snapshots {expected[0]} / {expected[1]}")
    return problems
