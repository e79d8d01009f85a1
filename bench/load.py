"""The load phases, each in a child process: the keyed raw-COPY floor, the project's load (what the
DAG's stage and publish tasks run), the course's way (kept here only, as the baseline), and the
stamping of the five snapshots that follows a first load.

Imports stay inside the functions so that each child's peak RSS is what its phase needs, not what
the parent or another phase loaded.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


def phase_copy_floor(args: dict) -> dict:
    """Raw `COPY ... FROM STDIN (FORMAT csv)` of each file into its empty keyed table, serially."""
    import psycopg

    from streamflow.registry import TABLES

    folder, per_table = Path(args["folder"]), {}
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        started = time.perf_counter()
        for table in TABLES:
            t0 = time.perf_counter()
            with conn.transaction():
                rows = copy_file(conn, table.name, folder / table.file_name)
            per_table[table.name] = {"s": time.perf_counter() - t0, "rows": rows}
        total = time.perf_counter() - started
    return {"s": total, "rows": sum(t["rows"] for t in per_table.values()), "tables": per_table}


def phase_upsert(args: dict) -> dict:
    """What the DAG's write and publish tasks run (`run_month` without validation nor snapshots):
    `streamflow.pipeline.stage_table` for the six tables (users first, each into the run's staging
    schema), then `publish_month` (the six staged tables into the live tables, one transaction).
    Validation is its own phase."""
    import psycopg

    from streamflow.run import RunMonth
    from streamflow_dev.run_month import run_month

    folder, seconds = Path(args["folder"]), {}
    os.environ["STREAMFLOW_SEEDS_DIR"] = str(folder.parent)
    month = RunMonth.named(folder.name, f"bench__{folder.name}__{uuid.uuid4().hex[:8]}")
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        published = run_month(conn, month, seconds=seconds)["tables"]
    per_table = {name: {"s": s} for name, s in seconds["stage"].items()}
    stage_s = sum(seconds["stage"].values())
    total = stage_s + seconds["publish"]
    for name, applied in published.items():
        per_table[name].update({k: applied[k] for k in ("rows", "inserted", "updated", "unchanged")})
    return {"s": total, "stage_s": stage_s, "publish_s": seconds["publish"],
            "rows": sum(t["rows"] for t in per_table.values()), "tables": per_table,
            "inserted": sum(t["inserted"] for t in per_table.values()),
            "updated": sum(t["updated"] for t in per_table.values()),
            "unchanged": sum(t["unchanged"] for t in per_table.values())}


def course_upsert_csv(engine, table: str, csv_path: Path, pk_cols: list[str]) -> int:
    """The course's `upsert_csv` task (CSC 8613 TP2 `ingest_flow.py`), kept as it is taught.

    Known flaws kept on purpose (this is the baseline, not a loader): `astype(bool)` turns the
    blank `plan_stream_*` cells into True, numerics pass through float64, every conflicting row
    is rewritten whether or not it changed.
    """
    import pandas as pd
    from sqlalchemy import text

    df = pd.read_csv(csv_path)
    if "signup_date" in df.columns:
        df["signup_date"] = pd.to_datetime(df["signup_date"], errors="coerce")
    for name in ("plan_stream_tv", "plan_stream_movies", "paperless_billing"):
        if name in df.columns:
            df[name] = df[name].astype(bool)
    with engine.begin() as conn:
        tmp = f"tmp_{table}"
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
        df.head(0).to_sql(tmp, conn, if_exists="replace", index=False)
        df.to_sql(tmp, conn, if_exists="append", index=False)
        cols = list(df.columns)
        collist = ", ".join(cols)
        updates = ", ".join(f"{col} = EXCLUDED.{col}" for col in cols if col not in pk_cols)
        conn.execute(text(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM {tmp} "  # noqa: S608 - the course's code
                          f"ON CONFLICT ({', '.join(pk_cols)}) DO UPDATE SET {updates}"))
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tmp}")
    return len(df)


def phase_course(args: dict) -> dict:
    """The course's way for the six tables (SQLAlchemy + psycopg2, as in the course)."""
    from sqlalchemy import create_engine

    from streamflow.registry import KEY, TABLES

    folder, per_table = Path(args["folder"]), {}
    engine = create_engine(args["url"])
    started = time.perf_counter()
    for table in TABLES:
        t0 = time.perf_counter()
        rows = course_upsert_csv(engine, table.name, folder / table.file_name, [KEY])
        per_table[table.name] = {"s": time.perf_counter() - t0, "rows": rows}
    total = time.perf_counter() - started
    engine.dispose()
    return {"s": total, "rows": sum(t["rows"] for t in per_table.values()), "tables": per_table}


def phase_snapshot(args: dict) -> dict:
    """The five snapshots stamped at one as_of with `streamflow.snapshots.stamp`: the DAG's SQL, rendered alike."""
    import psycopg

    from streamflow.registry import SNAPSHOTTED
    from streamflow.snapshots import stamp

    rounds = []
    with psycopg.connect(args["conninfo"]) as conn:
        for _ in range(2):  # first stamping, then the same as_of again (nothing changed)
            per_table, started = {}, time.perf_counter()
            for table in SNAPSHOTTED:
                t0 = time.perf_counter()
                row = stamp(conn, args["as_of"], (table,))[table.snapshot_table]
                per_table[table.name] = {"s": time.perf_counter() - t0, "inserted": row[2], "updated": row[3],
                                         "dropped": row[4]}
            rounds.append({"s": time.perf_counter() - started, "tables": per_table,
                           "rows": sum(t["inserted"] + t["updated"] for t in per_table.values())})
    return {"s": rounds[0]["s"], "rows": rounds[0]["rows"], "tables": rounds[0]["tables"], "again": rounds[1]}


def copy_file(conn, target: str, path: Path) -> int:
    """Raw `COPY target (header columns) FROM STDIN (FORMAT csv)` of the file's body; return the rows."""
    from psycopg import sql

    with conn.cursor() as cursor, path.open("rb") as handle:
        columns = handle.readline().decode("utf-8").strip().split(",")
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(target), sql.SQL(", ").join(map(sql.Identifier, columns)))) as stream:
            while chunk := handle.read(1 << 20):
                stream.write(chunk)
        return cursor.rowcount
