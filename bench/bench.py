"""`make bench [N=...] [MONTHS=...] [SKIP_COURSE=1] [SKIP_DAG=1]`: the project's upsert at scale, side by side.

One process tree, one PostgreSQL, the same generated files (`streamflow_dev.generate`, cached in
`.bench-data/<N>/`). Every measured phase runs in its own child process (this script with
`--phase`), so its wall time and its peak RSS (`os.wait4` rusage of that child) are its own:

* the keyed raw-COPY floor: `COPY table FROM STDIN` of month_000 into the empty keyed tables;
* the project's load (`streamflow_dev.run_month`: `streamflow.pipeline.stage_table` of all six tables
  into the run's staging schema, then `publish_month`, what the DAG's write and publish tasks run): first load (empty
  tables), next month over it, the same month again (nothing changed);
* the course's way (implemented here only, as the baseline): `pandas.read_csv`,
  `DataFrame.to_sql` into a `tmp_<table>` table, `INSERT ... SELECT ... ON CONFLICT DO UPDATE`;
* the validation of all six tables, every row (`streamflow.validation.run_suite`), and the
  stamping of the five snapshots at one as_of (`sql/queries/stamp_snapshot.sql`, as the DAG renders it);
* the DAG: parse time, then month_000 and month_001 through `airflow dags test --use-executor`
  (LocalExecutor, independent tasks side by side, an API server for their reports), wall time
  next to the sum of the task durations Airflow recorded (`task_instance.duration`).

Each approach gets its own fresh database. The server is an embedded PostgreSQL started in a
temp dir on a free port and stopped at exit, unless `BENCH_DSN` (a libpq URL/conninfo of a role
that may CREATE DATABASE) points at an existing one; the bench's databases are dropped at the end.

An "anatomy" phase times the steps of one table's load apart (raw COPY, with and without its
foreign-key checks, the write into staging, the publish into an empty and into a full table):
what bounds a load, and what staging costs.
Child and server CPU seconds are printed next to wall times: on a shared machine they are the
load-independent part of a measurement.

A "history" phase runs MONTHS months one after another on one warehouse (load, validate, stamp;
then the same month again at once, as a re-run does) and prints each month's seconds, the growth
of the last month over month 2 (`month_growth=`, `restamp_growth=` on the BENCH line) and draws
them into `bench/history.svg` (figures in `bench/history.json`, from which docs/performance.md is
regenerated). During the DAG months, Airflow's own CPU is measured (`airflow_cpu_s=`: `airflow dags test`'s process
tree, executor workers and task processes included, plus the API server's), and apart the CPU
the task callables logged (`task_code_cpu_s=`: the pipeline's own client work, a part of it).
Then the same two months run as deployed, by catch-up on a scheduler (+ dag-processor) already
running: `airflow_cpu_scheduler_s=` is Airflow's CPU per month there, the callables' CPU and the
processes' idle CPU taken off (see `scheduler_months`); the ≤ 10 s target judges that figure.

Settings (environment): N (users in month_000, default 300000), MONTHS (default 24), HISTORY_N
(the history phase's users, default N but at most 100000), SKIP_COURSE=1, SKIP_DAG=1,
SKIP_ANATOMY=1, BENCH_SEED, BENCH_DATA_DIR (default .bench-data), BENCH_DSN,
BENCH_STATEMENT_TIMEOUT (per statement, default 900s), BENCH_VALIDATE_TIMEOUT (default 120s).
The last line printed is the BENCH line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _folder in ("include", "tools"):  # the pipeline package, and the developer tooling (streamflow_dev)
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

from streamflow_dev.performance_doc import history_growth  # noqa: E402 - needs the path above

DEFAULT_N = 300_000
SEED = 8613
DEFAULT_MONTHS = 24  # the history phase: months one after another (the other phases use the first two)
HISTORY_N_CAP = 100_000  # its users unless HISTORY_N says otherwise: 24 months of them take minutes, not an hour
FIRST, NEXT = "month_000", "month_001"
PHASE_TIMEOUT_S = 3600
HISTORY_PLOT = ROOT / "bench" / "history.svg"  # docs/performance.md embeds it
RESULTS_JSON = ROOT / "bench" / "results.json"  # the targets' latest figures, per N (docs/performance.md)
RESULT_PREFIX = "BENCH-RESULT "


# ---------------------------------------------------------------------------------------------
# Child side: one measured phase per process. Imports stay inside the functions so that each
# child's peak RSS is what its phase needs, not what the parent or another phase loaded.
# ---------------------------------------------------------------------------------------------

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
                rows = _copy_file(conn, table.name, folder / table.file_name)
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


def phase_validate(args: dict) -> dict:
    """Validation as the DAG's `validate.<table>` tasks run it, on month_001 staged in a run's schema
    (`pipeline.stage_table`, untimed, in a database of its own): every expectation suite on every
    staged row (GX inside PostgreSQL; `row_rules_s`), then the month-level audit the DAG adds to it
    (`figures_s`): figures computed, kept with the user set, judged against a previous month.

    On the staged tables, not the live ones: those have had a month MERGEd over them, half their
    row versions dead, which the DAG never validates.
    """
    t0 = time.perf_counter()
    import great_expectations  # noqa: F401 - imported once, timed apart from the validation itself
    import psycopg

    from streamflow import pipeline
    from streamflow.registry import TABLES
    from streamflow.run import RunMonth
    from streamflow.validation import run_suite

    import_s = time.perf_counter() - t0
    folder = Path(args["folder"])
    os.environ["STREAMFLOW_SEEDS_DIR"] = str(folder.parent)
    run = RunMonth.named(folder.name, f"bench__validate__{uuid.uuid4().hex[:8]}")
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for table in TABLES:
            pipeline.stage_table(conn, table.name, run)
        with contextlib.suppress(psycopg.Error):  # not a superuser on BENCH_DSN: measure without
            conn.execute("CHECKPOINT")  # the staging's writes flushed before the timing starts
    per_table, failed = {}, []
    started = time.perf_counter()
    for table in TABLES:
        t1 = time.perf_counter()
        outcomes = run_suite(args["url"], table, run.staging_schema, run.as_of)
        failed += [f"{o.table}: {o.expectation} {o.column or ''} {o.error or ''}" for o in outcomes if not o.success]
        per_table[table.name] = {"s": time.perf_counter() - t1, "expectations": len(outcomes),
                                 "rows": max((o.element_count or 0) for o in outcomes)}
    row_rules_s = time.perf_counter() - started
    figures_s = _month_figures(args["conninfo"], per_table, run) if args.get("figures", True) else None
    return {"s": row_rules_s, "import_s": import_s, "tables": per_table, "failed": failed,
            "rows": sum(t["rows"] for t in per_table.values()), "figures_s": figures_s}


def _month_figures(conninfo: str, per_table: dict, run) -> float:
    """Seconds of `pipeline.audit_figures`' work on the six staged tables: compute, keep, judge.

    The month before is kept first, untimed: each table's user_ids but one in twenty (so the users
    kept are counted by a real join, not found equal), as that month's run would have kept them.
    """
    import psycopg
    from psycopg import sql

    from streamflow import history, metrics, staging, user_sets
    from streamflow.registry import KEY, TABLES

    total = 0.0
    with psycopg.connect(conninfo) as conn:
        for table in TABLES:
            batch = staging.table_in(run.staging_schema, table.name)
            with conn.transaction():
                (user_set,) = conn.execute(sql.SQL(
                    "WITH previous AS (SELECT array_agg(h) AS hashes FROM (SELECT hashtextextended({}, 0) AS h FROM {})"
                    "                  AS every_user WHERE h % 20 <> 0),"
                    " kept AS (INSERT INTO validation_user_sets (run_id, fingerprint, as_of, user_hashes)"
                    "          SELECT 'bench__previous', streamflow_user_set_fingerprint(hashes), '2024-01-31', hashes"
                    "          FROM previous ON CONFLICT DO NOTHING)"
                    " SELECT streamflow_user_set_fingerprint(hashes) FROM previous").format(
                    sql.Identifier(KEY), batch)).fetchone()
            previous = user_sets.PreviousUsers("2024-01-31", "bench__previous", user_set)
            t0 = time.perf_counter()
            with conn.transaction():
                figures = metrics.compute(conn, table, batch, run.as_of, run.run_id, previous)
                metrics.history(conn, table.name, run.as_of)
                metrics.record(conn, run.to_xcom(), figures)
            outcomes = history.evaluate(table, figures, [figures])
            per_table[table.name]["figures_s"] = time.perf_counter() - t0
            per_table[table.name]["checks"] = len(outcomes)
            total += per_table[table.name]["figures_s"]
    return total


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


def phase_parse(args: dict) -> dict:
    """DagBag parse of dags/, Airflow and the modules the DAG file imports already loaded.

    That is what the dag-processor pays per parse: it pre-imports a DAG file's imports
    (`parsing_pre_import_modules`) before the file is parsed. Also timed: a second parse.
    """
    t0 = time.perf_counter()
    import airflow.providers.common.sql.operators.sql  # noqa: F401
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag

    import_s = time.perf_counter() - t0
    walls, bag = [], None
    for _ in range(2):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        walls.append(time.perf_counter() - started)
    heavy = sorted(m for m in ("great_expectations", "pandas", "psycopg") if m in sys.modules)
    return {"s": walls[0], "again_s": walls[1], "import_s": import_s, "dags": sorted(bag.dag_ids),
            "heavy_modules_imported": heavy, "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}}


def timed_month(conn, sqlalchemy_url: str, folder: Path, run_id: str) -> dict[str, float]:
    """One month as the DAG's tasks run it, one step after another, each step timed (seconds).

    `streamflow_dev.run_month` (the tests' driver too): stage the six tables, validate the staged
    month, publish it, stamp the five snapshots. `load` is stage + publish.
    """
    from streamflow.run import RunMonth
    from streamflow_dev.run_month import run_month

    seconds = {}
    run_month(conn, RunMonth.named(folder.name, run_id), sqlalchemy_url=sqlalchemy_url, stamp=True, seconds=seconds)
    steps = {"validate": seconds["validate"], "load": sum(seconds["stage"].values()) + seconds["publish"],
             "stamp": seconds["stamp"]}
    steps["total"] = steps["load"] + steps["validate"] + steps["stamp"]
    return steps


def phase_history(args: dict) -> dict:
    """MONTHS months one after another on one warehouse, each run, then at once run again (a re-run:
    the same files, nothing changed). Per month: load, validate and stamp seconds of both runs."""
    import logging

    import great_expectations  # noqa: F401 - imported once, outside the timed months
    import psycopg

    logging.getLogger("streamflow").setLevel(logging.WARNING)  # the per-table log lines of 2 x 17 steps a month
    data = Path(args["data"])
    os.environ["STREAMFLOW_SEEDS_DIR"] = str(data)
    server_cpu = ServerCpu(Path(args["pgdata"])) if args.get("pgdata") else None

    def cpu_s() -> float | None:
        """This process's and the server's CPU so far: a month's work, whatever else loads the machine."""
        server = server_cpu() if server_cpu else None
        return None if server is None else time.process_time() + server

    def measured_month(folder: Path, run_id: str) -> dict[str, float]:
        """`timed_month` with the month's CPU (bench process + server) next to its seconds."""
        before = cpu_s()
        steps = timed_month(conn, args["url"], folder, run_id)
        after = cpu_s()
        steps["cpu"] = after - before if before is not None and after is not None else None
        return steps

    per_month = []
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        for index in range(args["months"]):
            folder = data / f"month_{index:03d}"
            first = measured_month(folder, f"bench__{folder.name}")
            again = measured_month(folder, f"bench__{folder.name}__again")
            per_month.append({"month": folder.name, "first": first, "again": again})
            print(f"    {folder.name}: " + "  ".join(
                f"{label} load {steps['load']:5.2f} validate {steps['validate']:5.2f} stamp {steps['stamp']:5.2f}"
                f" = {steps['total']:6.2f} s (CPU {fmt(steps['cpu'], 1)} s)"
                for label, steps in (("run", first), ("re-run", again))), flush=True)
        partitions = conn.execute("SELECT count(*) FROM snapshot_stamps").fetchone()[0]
    return {"s": sum(m["first"]["total"] + m["again"]["total"] for m in per_month), "months": per_month,
            "stamps_catalogued": partitions}


def plot_history(per_month: list[dict], n: int, path: Path) -> None:
    """The per-month seconds as an SVG line chart (no plotting library needed): wall time of the run
    and of the re-run, and their CPU (this process + the server), which the machine's load does not move."""
    width, height, left, bottom, top, right = 780, 340, 56, 40, 30, 215
    series = [("run: load + validate + stamp", "first", "total", "#1f77b4", ""),
              ("re-run (same files)", "again", "total", "#d62728", ""),
              ("run, CPU s", "first", "cpu", "#1f77b4", ' stroke-dasharray="5,4"'),
              ("re-run, CPU s", "again", "cpu", "#d62728", ' stroke-dasharray="5,4"')]
    series = [s for s in series if all(m[s[1]].get(s[2]) is not None for m in per_month)]
    peak = max(m[key][measure] for m in per_month for _, key, measure, _, _ in series) * 1.15
    count = len(per_month)

    def x(i: int) -> float:
        return left + (width - left - right) * i / max(count - 1, 1)

    def y(v: float) -> float:
        return height - bottom - (height - bottom - top) * v / peak

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">Seconds per month, {n:,} users, months one after another '
           f'(make bench MONTHS={count})</text>']
    step = 5 if peak > 25 else 2 if peak > 8 else 1
    for tick in range(0, int(peak) + 1, step):
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
                   f'<line x1="{left}" y1="{y(tick):.1f}" x2="{x(count - 1)}" y2="{y(tick):.1f}" stroke="#ddd"/>')
    out.append(f'<line x1="{left}" y1="{y(0)}" x2="{x(count - 1)}" y2="{y(0)}" stroke="black"/>'
               f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>')
    for i in range(count):
        if i % max(count // 12, 1) == 0 or i == count - 1:
            out.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{i + 1}</text>')
    out.append(f'<text x="{(left + x(count - 1)) / 2:.0f}" y="{height - 6}" text-anchor="middle">month</text>')
    for row, (label, key, measure, colour, dash) in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(m[key][measure]):.1f}" for i, m in enumerate(per_month))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>')
        out.append(f'<line x1="{width - right + 10}" y1="{top + 16 + 18 * row}" x2="{width - right + 34}" '
                   f'y2="{top + 16 + 18 * row}" stroke="{colour}" stroke-width="2"{dash}/>'
                   f'<text x="{width - right + 40}" y="{top + 20 + 18 * row}">{label}</text>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n</svg>\n", encoding="utf-8")


VALIDATION_RETRY_WORK_MEM = "256MB"  # a validation rerun with more memory, when the first one failed


def _copy_file(conn, target: str, path: Path) -> int:
    """Raw `COPY target (header columns) FROM STDIN (FORMAT csv)` of the file's body; return the rows."""
    from psycopg import sql

    with conn.cursor() as cursor, path.open("rb") as handle:
        columns = handle.readline().decode("utf-8").strip().split(",")
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(target), sql.SQL(", ").join(map(sql.Identifier, columns)))) as stream:
            while chunk := handle.read(1 << 20):
                stream.write(chunk)
        return cursor.rowcount


def _anatomy_of(conn, source, path: Path, superuser: bool) -> dict[str, float]:
    """Each step of one table's load timed alone, on the emptied keyed table, rolled back afterwards."""
    from psycopg import sql

    from streamflow import header, publish, stage, staging

    steps: dict[str, float] = {}
    target = sql.Identifier(source.name)
    schema = staging.schema_for(f"bench__anatomy__{source.name}")
    columns = list(header.read_header(path, source)[0])

    def timed(label: str, work, setup: tuple[str, ...] = (), preload=None) -> None:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(target))
            for statement in setup:
                conn.execute(statement)
            if preload:
                preload()
            t0 = time.perf_counter()
            work()
            steps[label] = time.perf_counter() - t0
        print(f"    {source.name}: {label:<58} {steps[label]:7.2f} s", flush=True)

    def write() -> None:
        stage.stage_file(conn, schema, source, path)

    def apply() -> None:
        publish.apply_staged(conn, schema, source, columns, 0)

    work_mem = (f"SET LOCAL work_mem = '{stage.WORK_MEM}'",)
    timed("raw COPY into the keyed table (the floor)", lambda: _copy_file(conn, source.name, path))
    if superuser and source.depends_on_users:
        timed("raw COPY, foreign-key triggers off", lambda: _copy_file(conn, source.name, path),
              setup=("SET LOCAL session_replication_role = replica",))
    timed("write: typed COPY into UNLOGGED staging (stage_file)", write)
    timed("publish, empty live table: INSERT ... SELECT (bulk)", apply, setup=work_mem, preload=write)
    timed("write + publish into the empty table (a first load)", lambda: (write(), apply()), setup=work_mem)
    timed("publish MERGE, the same rows already there", apply, setup=work_mem, preload=lambda: (write(), apply()))
    return steps


def phase_anatomy(args: dict) -> dict:
    """Where a load's time goes, step by step, for `users` and the widest file (`usage_agg_30d`).

    Every step runs alone on the emptied keyed table (TRUNCATE inside a transaction that is
    rolled back), so no step sees another's rows: raw COPY (the floor) with and without the
    foreign-key triggers, the write step alone (typed COPY into the run's UNLOGGED staging
    table: the staging cost), the publish into the empty table (bulk INSERT ... SELECT), both
    together (a first load), and the publish MERGE over the same rows already there.
    """
    import psycopg

    from streamflow.registry import table

    folder, found = Path(args["folder"]), {}
    with psycopg.connect(args["conninfo"], autocommit=True) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        work_mem = conn.execute("SHOW work_mem").fetchone()[0]
        for name in ("users", "usage_agg_30d"):
            found[name] = _anatomy_of(conn, table(name), folder / table(name).file_name, superuser)
            if name == "users":  # the dependent table's foreign key needs its users
                _copy_file(conn, "users", folder / "users.csv")
    return {"s": sum(sum(steps.values()) for steps in found.values()), "tables": found, "work_mem": work_mem}


PHASES = {"copy_floor": phase_copy_floor, "anatomy": phase_anatomy, "upsert": phase_upsert, "course": phase_course,
          "validate": phase_validate, "snapshot": phase_snapshot, "parse": phase_parse,
          "history": phase_history}


def child_main(name: str) -> int:
    args = json.loads(os.environ.pop("BENCH_PHASE_ARGS", "{}"))
    result = PHASES[name](args)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    if result.get("failed"):
        print("failed: " + "\n".join(result["failed"]), flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side.
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Measured:
    """One child process: what it printed, its wall time and its peak RSS."""

    label: str
    wall_s: float
    rss_mb: float
    result: dict
    ok: bool
    tail: str = ""
    client_cpu_s: float = 0.0  # the child's own user + system CPU
    server_cpu_s: float | None = None  # PostgreSQL's CPU over the phase (embedded server only)

    @property
    def s(self) -> float:
        return self.result.get("s", self.wall_s)


class ServerCpu:
    """CPU seconds the embedded server has used so far (all its processes, the exited ones too).

    The postmaster's cutime/cstime hold its reaped backends; its live children (backends,
    checkpointer, WAL writer...) are added. On a shared machine this is the load-independent
    measure of a phase's server work, next to the wall time.
    """

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _stat(pid: str) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    def __call__(self) -> float | None:
        try:
            postmaster = (self.pgdata / "postmaster.pid").read_text().split()[0]
            fields = self._stat(postmaster)
        except (OSError, IndexError):
            return None
        total = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    child = self._stat(entry.name)
                    if child[1] == postmaster:
                        total += int(child[11]) + int(child[12])
        return total / self.tick


SERVER_CPU: ServerCpu | None = None


def run_child(label: str, argv: list[str], env: dict | None = None, timeout: float = PHASE_TIMEOUT_S,
              progress: str | None = None) -> Measured:
    """Run one child; peak RSS from its own rusage (`os.wait4`), result from its BENCH-RESULT line.

    Lines of its output that start with `progress` are echoed as they come (a long phase's steps).
    """
    cpu_before = SERVER_CPU() if SERVER_CPU else None
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                   start_new_session=True)
        echoed, echoed_at = 0, started
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if progress and (pid or time.perf_counter() - echoed_at > 1):
                    echoed, echoed_at = echo_progress(out, echoed, progress), time.perf_counter()
                if pid:
                    break
                if time.perf_counter() - started > timeout:
                    os.killpg(process.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:
            with_suppress(os.killpg, process.pid, signal.SIGTERM)
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    result = {}
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    ok = process.returncode == 0
    server_cpu = None
    if cpu_before is not None:
        time.sleep(0.3)  # let the phase's backends exit and be reaped into the postmaster's cutime
        after = SERVER_CPU()
        server_cpu = after - cpu_before if after is not None else None
    measured = Measured(label, wall, usage.ru_maxrss / 1024, result, ok, "" if ok else text[-3000:],
                        client_cpu_s=usage.ru_utime + usage.ru_stime, server_cpu_s=server_cpu)
    status_text = "ok" if ok else f"FAILED (exit {process.returncode})"
    print(f"  {label:<44} {measured.s:8.2f} s  wall {wall:7.2f} s  CPU client {measured.client_cpu_s:6.1f} s"
          f" server {fmt(server_cpu, 1):>6} s  peak RSS {measured.rss_mb:6.1f} MB  {status_text}", flush=True)
    if not ok:
        print(measured.tail, file=sys.stderr, flush=True)
    return measured


def echo_progress(out, echoed: int, prefix: str) -> int:
    """Print the complete lines starting with `prefix` that `out` gained after the first `echoed`; their count."""
    out.seek(0)
    lines = [line for line in out.read().splitlines(keepends=True) if line.startswith(prefix) and line.endswith("\n")]
    out.seek(0, os.SEEK_END)
    for line in lines[echoed:]:
        print(line, end="", flush=True)
    return len(lines)


def with_suppress(function, *args) -> None:
    with contextlib.suppress(OSError):
        function(*args)


def phase(label: str, name: str, args: dict, env: dict, progress: str | None = None) -> Measured:
    return run_child(label, [sys.executable, str(Path(__file__).resolve()), "--phase", name],
                     env={**env, "BENCH_PHASE_ARGS": json.dumps(args)}, progress=progress)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "include"), str(ROOT / "tools"), env.get("PYTHONPATH")]))
    return env


def ensure_data(n: int, seed: int, data_root: Path, env: dict, months: int) -> tuple[Path, Measured | None]:
    """Generated months for `n` users, reused when `generate.json` says they match."""
    from streamflow_dev import generate

    folder = data_root / str(n)
    manifest_path = folder / generate.MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("users"), manifest.get("seed"), manifest.get("generator_sha256")) == (
                n, seed, generate._own_digest()) and manifest.get("months", 0) >= months:
            print(f"data: reusing {folder} ({manifest['seconds']} s to generate)", flush=True)
            return folder, None
    print(f"data: generating {n} users x {months} months into {folder}", flush=True)
    measured = run_child("generate (streamflow_dev.generate)", [
        sys.executable, "-m", "streamflow_dev.generate", "--users", str(n), "--months", str(months),
        "--out", str(folder), "--seed", str(seed)], env=env)
    if not measured.ok:
        raise SystemExit("data generation failed")
    return folder, measured


class Server:
    """The PostgreSQL the bench runs against: embedded in a temp dir, or BENCH_DSN."""

    def __init__(self):
        from streamflow_dev import pgserver
        from streamflow_dev.env import PostgresSettings

        self.suffix = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix="streamflow-bench-"))
        self.pgdata = None
        dsn = os.environ.get("BENCH_DSN")
        if dsn:
            from psycopg.conninfo import conninfo_to_dict

            info = conninfo_to_dict(dsn)
            self.settings = PostgresSettings(host=info.get("host", "127.0.0.1"), port=int(info.get("port", 5432)),
                                             user=info.get("user", ""), password=info.get("password", ""),
                                             database=info.get("dbname", "postgres"), airflow_database="")
            self.kind = f"BENCH_DSN server {self.settings.host}:{self.settings.port}"
        else:
            self.settings = PostgresSettings(host="127.0.0.1", port=pgserver.free_port(), user="streamflow_bench",
                                             password=f"pw-{uuid.uuid4().hex}", database="postgres",
                                             airflow_database="")
            self.pgdata = self.workdir / "pgdata"
            pgserver.start(self.pgdata, self.settings)
            self.kind = f"embedded PostgreSQL on 127.0.0.1:{self.settings.port} (data in {self.pgdata})"
        self.databases: list[str] = []

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.settings.conninfo()) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def database(self, role: str, schema: bool = True, **parameters: str):
        """A fresh database (schema applied): its PostgresSettings.

        Every session on it gets `statement_timeout` (BENCH_STATEMENT_TIMEOUT, default 900s), so a
        runaway plan fails its phase instead of holding the bench for hours; `parameters` are
        further per-database settings (e.g. work_mem).
        """
        import psycopg
        from psycopg import sql

        from streamflow.schema import apply_schema
        from streamflow_dev import pgserver

        name = f"bench_{role}_{self.suffix}"
        pgserver.ensure_databases(self.settings, name)
        self.databases.append(name)
        settings = dataclasses.replace(self.settings, database=name)
        parameters = {"statement_timeout": os.environ.get("BENCH_STATEMENT_TIMEOUT") or "900s", **parameters}
        with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
            for key, value in parameters.items():
                conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(key), sql.Literal(value)))
        if schema:
            with psycopg.connect(settings.conninfo()) as conn:
                apply_schema(conn)
        return settings

    def checkpoint(self) -> None:
        """Flush what the previous phase wrote, so that its checkpoint does not land in the next one."""
        import psycopg

        try:
            with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
                conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass  # not a superuser on BENCH_DSN: measure without

    def close(self) -> None:
        import psycopg
        from psycopg import sql

        from streamflow_dev import pgserver

        if self.pgdata is not None:
            pgserver.stop(self.pgdata)
        else:
            with psycopg.connect(self.settings.conninfo(), autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        shutil.rmtree(self.workdir, ignore_errors=True)


def run_dag_months(server: Server, data: Path, env: dict, **warehouse_parameters: str) -> dict:
    """Migrate a metadata DB, parse the DAG, then month_000 and month_001 through `airflow dags test`.

    `--use-executor`: the LocalExecutor runs independent tasks side by side (the five dependent
    upserts, the six validations, the five snapshots), as a scheduler would. Its task processes
    report through the Execution API, so an API server runs for the duration.
    """
    import psycopg

    from streamflow_dev import pgserver
    from streamflow_dev.env import DAGS_TEST_SETTINGS, airflow_environment
    from streamflow_dev.stack import Stack

    warehouse = server.database("dag", schema=False, **warehouse_parameters)  # the DAG's ensure_schema creates it
    metadata = server.database("airflow_meta", schema=False)
    home = server.workdir / "airflow-home"
    values = {"POSTGRES_HOST": warehouse.host, "POSTGRES_PORT": str(warehouse.port), "POSTGRES_USER": warehouse.user,
              "POSTGRES_PASSWORD": warehouse.password, "POSTGRES_DB": warehouse.database,
              "AIRFLOW_METADATA_DB": metadata.database, "STREAMFLOW_SEEDS_DIR": str(data),
              "AIRFLOW_API_PORT": str(pgserver.free_port())}
    airflow_env = airflow_environment({**values, **DAGS_TEST_SETTINGS}, home)
    airflow = str(Path(sys.executable).parent / "airflow")
    out: dict = {}
    migrate = run_child("airflow db migrate (setup)", [airflow, "db", "migrate"], env=airflow_env)
    if not migrate.ok:
        return {"error": "airflow db migrate failed", "migrate": migrate}
    out["migrate"] = migrate
    out["parse"] = phase("DAG parse (DagBag of dags/)", "parse", {}, airflow_env)
    if out["parse"].result.get("errors") or "ingest_month" not in out["parse"].result.get("dags", []):
        out["parse"].ok = False
        print(f"  DAG parse: {out['parse'].result}", file=sys.stderr)
    stack = Stack(airflow_env)
    try:
        api_server = stack.start("api-server")
        stack.wait_for_api()
        for month in (FIRST, NEXT):
            server.checkpoint()
            api_cpu_before = tree_cpu_s(api_server.pid)
            measured = run_child(f"DAG {month} (airflow dags test)", [
                airflow, "dags", "test", "ingest_month", "--use-executor", "--conf", json.dumps({"month": month})], env=airflow_env)
            with psycopg.connect(metadata.conninfo()) as conn:
                run = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = 'ingest_month' "
                                   "ORDER BY id DESC LIMIT 1").fetchone()
                tasks = conn.execute("SELECT task_id, state, duration FROM task_instance WHERE dag_id = 'ingest_month' "
                                     "AND run_id = %s ORDER BY start_date", (run[0],)).fetchall() if run else []
            # Airflow's own CPU: `dags test` with its executor workers and task processes (all reaped, so
            # in its rusage), plus what the API server spent answering them.
            airflow_cpu = measured.client_cpu_s + tree_cpu_s(api_server.pid) - api_cpu_before
            # Part of the tree's CPU is the pipeline's own client work inside the task callables (COPY
            # client, Great Expectations' Python): each task logs it (airflow_glue.CPU_CLOCK).
            task_code_cpu = task_code_cpu_s(home / "logs", run[0]) if run else None
            print(f"  Airflow CPU over {month}: {airflow_cpu:.1f} s (dags test tree {measured.client_cpu_s:.1f} s, "
                  f"of which {fmt(task_code_cpu, 1)} s in the task callables)", flush=True)
            measured.result = {"s": measured.wall_s, "airflow_cpu_s": airflow_cpu, "task_code_cpu_s": task_code_cpu,
                               "run_id": run and run[0], "state": run and run[1],
                               "task_sum_s": sum(t[2] or 0 for t in tasks),
                               "tasks": {t[0]: {"state": t[1], "s": t[2]} for t in tasks}}
            measured.ok = measured.ok and bool(run) and run[1] == "success"
            if not measured.ok:
                print(f"  DAG {month}: run state {run and run[1]}; tasks "
                      f"{ {t[0]: t[1] for t in tasks if t[1] != 'success'} }\n{measured.tail}", file=sys.stderr)
            out[month] = measured
            out["airflow_cpu_s"] = airflow_cpu if measured.ok else None
            out["task_code_cpu_s"] = task_code_cpu if measured.ok else None
            with psycopg.connect(warehouse.conninfo()) as conn:
                out[f"{month}_users"] = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        out["scheduler"] = scheduler_months(server, airflow_env, api_server.pid, metadata, home,
                                            {month: out.get(f"{month}_users") for month in (FIRST, NEXT)},
                                            **warehouse_parameters)
        months_run = out["scheduler"].get("months", {})
        if months_run.get(NEXT, {}).get("ok"):
            out["airflow_cpu_scheduler_s"] = months_run[NEXT]["airflow_s"]
    finally:
        stack.stop_all()
    return out


SCHEDULER_SETTLE_S = 10  # after its first heartbeat: its start-up (imports, worker forks, preload) done
# The idle CPU sample, subtracted per second of each month's wall time: one period of the dag-processor's
# re-parse of the DAG files ([dag_processor] min_file_process_interval, 30 s), which it pays per minute, not per month.
SCHEDULER_IDLE_S = 30
SCHEDULED_MONTH_TIMEOUT_S = 900


def scheduler_months(server: Server, airflow_env: dict, api_server_pid: int, metadata, home: Path,
                     expected_users: dict[str, int], **warehouse_parameters: str) -> dict:
    """month_000 and month_001 as the deployment runs them: catch-up by a scheduler already running.

    A scheduler and a dag-processor (Airflow 3's scheduler does not parse DAG files) start against a
    fresh warehouse database, the same metadata DB and the API server already up, with
    STREAMFLOW_LAST_MONTH set to month_001's so that catch-up covers exactly the two months. Once
    settled, their idle CPU is sampled; then the DAG is unpaused and each scheduled run's CPU is the
    delta of the three process trees (the scheduler's holds its LocalExecutor workers and, reaped into
    them, the task processes) over the run, less the idle rate times its wall time. The run's end is
    seen by polling the metadata DB directly (0.2 s), not the API server being measured. Each run must
    leave the warehouse with the users `dags test` loaded for its month.
    """
    import psycopg

    from streamflow import months
    from streamflow.settings import WAREHOUSE_CONN_ID
    from streamflow_dev.stack import DAG_ID, FINISHED, TRAINING_DAG_ID, Stack

    warehouse = server.database("dag_scheduler", schema=False, **warehouse_parameters)
    last_month = f"{months.month_from_name(NEXT).as_of:%Y-%m}"
    # Same JWT secret and API server as `dags test`'s environment; a warehouse of its own.
    stack = Stack({**airflow_env, "POSTGRES_DB": warehouse.database, "STREAMFLOW_LAST_MONTH": last_month,
                   f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": warehouse.url("postgresql", warehouse.database)})
    out: dict = {"months": {}}

    def wait_for(what: str, done, timeout: float, *commands: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            for command in commands:
                stack.check_alive(command)  # raises with the end of its log
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} not within {timeout:.0f} s; see {stack.log_dir}")
            time.sleep(0.5)

    def dag_field(dag_id: str, field: str):
        response = stack.api.get(f"dags/{dag_id}")
        return response.json().get(field) if response.status_code == 200 else None

    try:
        # `dags test` stored the DAG with no schedule end: keep it paused until the dag-processor has
        # stored the one that stops at month_001, or catch-up would start every month since 2024-01.
        stack.set_paused(DAG_ID, True)
        dag_processor = stack.start("dag-processor")
        wait_for("the DAG parsed with its schedule ending at month_001",
                 lambda: "until" in (dag_field(DAG_ID, "timetable_summary") or ""), 300, "dag-processor")
        wait_for(f"{TRAINING_DAG_ID} parsed", lambda: dag_field(TRAINING_DAG_ID, "dag_id") is not None, 120,
                 "dag-processor")
        stack.set_paused(TRAINING_DAG_ID, True)  # only ingest_month's months are measured
        scheduler = stack.start("scheduler")
        wait_for("the scheduler's first heartbeat", lambda: (stack.call("GET", "monitor/health").get("scheduler")
                                                           or {}).get("status") == "healthy", 300, "scheduler")
        time.sleep(SCHEDULER_SETTLE_S)
        pids = {"scheduler": scheduler.pid, "dag-processor": dag_processor.pid, "API server": api_server_pid}

        def cpu() -> dict[str, float]:
            return {name: tree_cpu_s(pid) for name, pid in pids.items()}

        idle_before, idle_started = cpu(), time.perf_counter()
        time.sleep(SCHEDULER_IDLE_S)
        idle_after, idle_wall = cpu(), time.perf_counter() - idle_started
        idle_rate = {name: (idle_after[name] - idle_before[name]) / idle_wall for name in pids}
        out["idle_cpu_per_s"] = idle_rate
        print(f"  scheduler settled: idle CPU {sum(idle_rate.values()):.3f} s per second ("
              + ", ".join(f"{name} {rate:.3f}" for name, rate in idle_rate.items()) + f", over {idle_wall:.0f} s)",
              flush=True)

        server.checkpoint()
        before, started = cpu(), time.perf_counter()
        stack.set_paused(DAG_ID, False)
        with psycopg.connect(metadata.conninfo(), autocommit=True) as conn:
            for index, month in enumerate((FIRST, NEXT)):
                def finished(index=index):
                    runs = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_type = 'scheduled' "
                                        "ORDER BY logical_date", (DAG_ID,)).fetchall()
                    return runs[index] if len(runs) > index and runs[index][1] in FINISHED else None

                deadline = time.monotonic() + SCHEDULED_MONTH_TIMEOUT_S
                while (run := finished()) is None and time.monotonic() < deadline:
                    stack.check_alive("scheduler")
                    time.sleep(0.2)
                after, ended = cpu(), time.perf_counter()
                if run is None:
                    raise SystemExit(f"scheduled run {index + 1} not finished after {SCHEDULED_MONTH_TIMEOUT_S} s")
                gross = {name: after[name] - before[name] for name in pids}
                out["months"][month] = scheduled_month_cpu(month, run, ended - started, gross, idle_rate, home)
                with psycopg.connect(warehouse.conninfo()) as warehouse_conn:  # that run loaded that month
                    users = warehouse_conn.execute("SELECT count(*) FROM users").fetchone()[0]
                if expected_users.get(month) is not None and users != expected_users[month]:
                    out["months"][month]["ok"] = False
                    print(f"  {month} under the scheduler: {users} users, `dags test` loaded "
                          f"{expected_users.get(month)}", file=sys.stderr, flush=True)
                before, started = after, ended
    except SystemExit as error:
        out["error"] = str(error)
        print(f"  scheduler months: {error}", file=sys.stderr, flush=True)
    finally:
        stack.stop_all()
    return out


def scheduled_month_cpu(month: str, run: tuple[str, str], wall: float, gross: dict[str, float],
                        idle_rate: dict[str, float], home: Path) -> dict:
    """One scheduled month's CPU per process, the idle rate times its wall time taken off, and Airflow's
    own part: that less what the task callables logged (the pipeline's client work). Printed."""
    idle = sum(idle_rate.values()) * wall
    task_code = task_code_cpu_s(home / "logs", run[0])
    airflow_s = sum(gross.values()) - idle - (task_code or 0.0)
    print(f"  Airflow CPU over {month} under a running scheduler (run {run[0]}, {run[1]}, wall {wall:.1f} s): "
          f"{airflow_s:.1f} s = " + " + ".join(f"{name} {seconds:.1f}" for name, seconds in gross.items())
          + f" - idle {idle:.1f} - task callables {fmt(task_code, 1)}", flush=True)
    return {"run_id": run[0], "ok": run[1] == "success" and task_code is not None, "wall_s": wall,
            "gross_s": gross, "idle_s": idle, "task_code_cpu_s": task_code, "airflow_s": airflow_s}


def task_code_cpu_s(log_folder: Path, run_id: str) -> float | None:
    """CPU seconds the run's task callables logged (`airflow_glue.CPU_LOG_EVENT`), summed; None if none did."""
    from streamflow.airflow_glue import CPU_LOG_EVENT

    seconds = []
    for path in (log_folder / "dag_id=ingest_month" / f"run_id={run_id}").glob("task_id=*/attempt=*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            event = json.loads(line).get("event", "") if line.startswith("{") else ""
            if event.startswith(CPU_LOG_EVENT):
                seconds.append(float(event[len(CPU_LOG_EVENT):].split()[0]))
    return sum(seconds) if seconds else None


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and of every live descendant, each with its reaped children
    (psutil): a LocalExecutor worker outlives the task processes it reaps."""
    import psutil

    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:4])  # a live worker's reaped task processes too
    except psutil.Error:
        return 0.0
    return total


def with_options(settings, options: str) -> str:
    """SQLAlchemy URL of `settings`' database with libpq `options` (session settings)."""
    from urllib.parse import quote

    return settings.url("postgresql+psycopg", settings.database) + "?options=" + quote(options, safe="")


def failure_reason(measured: Measured) -> str:
    """The last error line a failed child printed."""
    lines = [line.strip() for line in measured.tail.splitlines() if "Error" in line or line.startswith("failed:")]
    lines = lines or measured.tail.strip().splitlines() or ["(no output)"]
    return lines[-1][:300]


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(a, b):
    return a / b if a is not None and b else None


def report(n: int, data: Path, server: Server, m: dict, skip_course: bool, skip_dag: bool,
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    """Print the tables; return the BENCH line."""
    from streamflow.registry import TABLES

    manifest = json.loads((data / "generate.json").read_text())
    months = {p["month"]: p for p in manifest["per_month"]}
    dag = m.get("dag") or {}
    print()
    print(f"StreamFlow bench: N={n} users in {FIRST}, {months[NEXT]['users']} in {NEXT} "
          f"({months[NEXT]['joined']} joined, {months[NEXT]['left']} left), seed {manifest['seed']}; "
          f"{os.cpu_count()} CPUs; PostgreSQL {server.version()} "
          f"({'BENCH_DSN' if server.pgdata is None else 'embedded, shared_buffers 256MB'}); "
          f"load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end")
    rows = [
        ("keyed raw COPY floor, month_000, serial", m.get("copy")),
        ("project upsert, first load (empty tables)", m.get("upsert_first")),
        ("project upsert, next month", m.get("upsert_next")),
        ("project upsert, same month again (unchanged)", m.get("upsert_same")),
        ("course (pandas to_sql), first load", m.get("course_first")),
        ("course, next month", m.get("course_next")),
        ("validation, six tables, every row (GX)", m.get("validate")),
        (f"  same, work_mem {VALIDATION_RETRY_WORK_MEM} (diagnostic)", m.get("validate_more_memory")),
        ("snapshot stamping, five tables, one as_of", m.get("snapshot")),
        ("DAG parse (DagBag, Airflow imported)", dag.get("parse")),
        (f"DAG {FIRST}, airflow dags test", dag.get(FIRST)),
        (f"DAG {NEXT}, airflow dags test", dag.get(NEXT)),
        ("(setup) airflow db migrate", dag.get("migrate")),
    ]
    print()
    print(f"| {'phase':<46} | {'rows':>9} | {'seconds':>8} | {'rows/s':>9} | {'client CPU s':>12} "
          f"| {'server CPU s':>12} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 10}|{'-' * 11}|{'-' * 14}|{'-' * 14}|{'-' * 13}|")
    for label, measured in rows:
        if measured is None:
            if not label.startswith(("DAG", "(setup)", " ")):
                print(f"| {label:<46} | {'':>9} | {'skipped':>8} | {'':>9} | {'':>12} | {'':>12} | {'':>11} |")
            continue
        count = measured.result.get("rows")
        rate = f"{count / measured.s:,.0f}" if count and measured.s else ""
        seconds = f"{measured.s:8.3f}" if measured.s < 1 else f"{measured.s:8.2f}"
        if not measured.ok:
            seconds = f"{'FAILED':>8}"
            rate = f"({measured.wall_s:.0f} s)"
        print(f"| {label:<46} | {count or '':>9} | {seconds} | {rate:>9} | {measured.client_cpu_s:12.1f} "
              f"| {fmt(measured.server_cpu_s, 1):>12} | {measured.rss_mb:11.0f} |")
    snap = m.get("snapshot")
    if snap and snap.ok:
        print(f"| {'snapshot stamping again, same as_of':<46} | {snap.result['again']['rows']:>9} | "
              f"{snap.result['again']['s']:8.2f} | {'':>9} | {'':>12} | {'':>12} | {'':>11} |")
    if dag.get(NEXT) and dag[NEXT].result.get("tasks"):
        d = dag[NEXT].result
        print(f"| {f'DAG {NEXT}: sum of its task durations':<46} | {'':>9} | {d['task_sum_s']:8.2f} | {'':>9} "
              f"| {'':>12} | {'':>12} | {'':>11} |")

    print()
    print("Per table, seconds:")
    columns = [("copy", "COPY floor"), ("upsert_first", "upsert 1st"), ("upsert_next", "upsert next"),
               ("upsert_same", "upsert same"), ("course_first", "course 1st"), ("course_next", "course next")]
    print("| table            | " + " | ".join(f"{title:>11}" for _, title in columns) + " |")
    print("|" + "-" * 18 + "|" + "|".join("-" * 13 for _ in columns) + "|")
    for table in TABLES:
        cells = []
        for key, _ in columns:
            found = m.get(key)
            cells.append(f"{found.result['tables'][table.name]['s']:11.2f}" if found and found.ok else f"{'':>11}")
        print(f"| {table.name:<16} | " + " | ".join(cells) + " |")
    # The project's load is the six writes above (into staging) and one publish of all six.
    cells = [f"{m[key].result['publish_s']:11.2f}" if m.get(key) and m[key].ok and "publish_s" in m[key].result
             else f"{'':>11}" for key, _ in columns]
    print(f"| {'publish (1 txn)':<16} | " + " | ".join(cells) + " |")

    history = m.get("history")
    if history and history.ok:
        per_month = history.result["months"]
        print()
        print(f"History: {len(per_month)} months one after another, N={history.result['n']}; each month run, then at once run again "
              f"(same files); seconds ({history.result['stamps_catalogued']} stamps catalogued at the end):")
        print("| month     | load | validate | stamp | total | CPU s | re-run load | validate | re-stamp | total | CPU s |")
        print("|-----------|-----:|---------:|------:|------:|------:|------------:|---------:|---------:|------:|------:|")
        for entry in per_month:
            first, again = entry["first"], entry["again"]
            print(f"| {entry['month']} | {first['load']:4.2f} | {first['validate']:8.2f} | {first['stamp']:5.2f} "
                  f"| {first['total']:5.2f} | {fmt(first.get('cpu'), 1):>5} | {again['load']:11.2f} "
                  f"| {again['validate']:8.2f} | {again['stamp']:8.2f} | {again['total']:5.2f} "
                  f"| {fmt(again.get('cpu'), 1):>5} |")

    first_load, copy_floor = m.get("upsert_first"), m.get("copy")
    if first_load and first_load.ok and copy_floor and copy_floor.ok:
        print()
        print(f"Staging cost of the first load (month_000, N={n}) against the serial keyed raw-COPY floor "
              f"({copy_floor.s:.2f} s):")
        for label, seconds in (("write: six typed COPYs into UNLOGGED staging", first_load.result["stage_s"]),
                               ("publish: one transaction, keys set aside and built after the insert",
                                first_load.result["publish_s"]),
                               ("first load (write + publish)", first_load.s)):
            print(f"    {label:<66} {seconds:7.2f} s  {fmt(ratio(seconds, copy_floor.s))}x floor")

    anatomy = m.get("anatomy")
    if anatomy and anatomy.ok:
        print()
        print(f"Anatomy of one table's load (each step alone, emptied keyed table, rolled back; N={n}, "
              f"server work_mem {anatomy.result['work_mem']}):")
        for name, steps in anatomy.result["tables"].items():
            floor = steps.get("raw COPY into the keyed table (the floor)")
            print(f"  {name}:")
            for label, seconds in steps.items():
                print(f"    {label:<66} {seconds:7.2f} s  {fmt(ratio(seconds, floor))}x floor")
            total = steps["write: typed COPY into UNLOGGED staging (stage_file)"] + steps[
                "publish MERGE, the same rows already there"]
            label = "write + MERGE over the same rows (= a month again, unreplayed)"
            print(f"    {label:<66} {total:7.2f} s  {fmt(ratio(total, floor))}x floor")
    if m.get("validate_reason"):
        print()
        print(f"Validation failed: {m['validate_reason']}")
    if dag.get("parameters"):
        print()
        print(f"The DAG ran on a warehouse with {dag['parameters']} (validation fails without it): dag_month_s is NA.")

    if dag.get(NEXT) and dag[NEXT].result.get("tasks"):
        print()
        print(f"DAG {NEXT} task durations (s): " + ", ".join(
            f"{task}={info['s']:.2f}" for task, info in dag[NEXT].result["tasks"].items() if info["s"] is not None))

    scheduler = dag.get("scheduler") or {}
    if scheduler.get("months"):
        idle = scheduler["idle_cpu_per_s"]
        print()
        print("Airflow's CPU per month under a running scheduler (catch-up of both months; CPU s per process tree; "
              f"idle {sum(idle.values()):.3f} CPU s per second, sampled over {SCHEDULER_IDLE_S} s once settled, "
              "taken off per second of the month's wall time):")
        names = list(idle)
        print("| month     | wall s | " + " | ".join(f"{name:>13}" for name in names)
              + " | - idle | - task callables | = Airflow |")
        print("|-----------|-------:|" + "|".join("-" * 14 + ":" for _ in names) + "|-------:|-----------------:|----------:|")
        for month, found in scheduler["months"].items():
            print(f"| {month} | {found['wall_s']:6.1f} | "
                  + " | ".join(f"{found['gross_s'][name]:13.1f}" for name in names)
                  + f" | {found['idle_s']:6.1f} | {fmt(found['task_code_cpu_s'], 1):>16} | {found['airflow_s']:9.1f} |"
                  + ("" if found["ok"] else " (run failed)"))
    if scheduler.get("error"):
        print()
        print(f"Scheduler months not measured: {scheduler['error']}")

    def s(key):
        found = m.get(key)
        return found.s if found and found.ok else None

    upsert_s, floor_s = s("upsert_first"), s("copy")
    course_next, upsert_next = s("course_next"), s("upsert_next")
    same_s = s("upsert_same")
    rss = max((m[k].rss_mb for k in ("upsert_first", "upsert_next", "upsert_same") if m.get(k)), default=None)
    dag_month = dag[NEXT].wall_s if dag.get(NEXT) and dag[NEXT].ok and not dag.get("parameters") else None
    snap_s = s("snapshot")
    figures_s = m["validate"].result.get("figures_s") if m.get("validate") and m["validate"].ok else None
    with_figures = s("validate") + figures_s if figures_s is not None else None
    parse = dag["parse"].s if dag.get("parse") and dag["parse"].ok else None

    def cpu(key):
        found = m.get(key)
        return found.client_cpu_s + found.server_cpu_s if found and found.ok and found.server_cpu_s is not None else None

    # A wall time cannot beat the CPU it needs spread over every core: what bounds the DAG month.
    dag_cpu = (dag[NEXT].client_cpu_s + dag[NEXT].server_cpu_s  # the API server's own CPU not counted
               if dag.get(NEXT) and dag[NEXT].ok and dag[NEXT].server_cpu_s is not None else None)
    cores = os.cpu_count() or 1
    scheduled = (dag.get("scheduler") or {}).get("months", {}).get(NEXT) or {}
    per_month_history = history.result["months"] if history and history.ok else []
    targets = [
        ("first load <= 1.15x keyed raw-COPY floor", ratio(upsert_s, floor_s), lambda v: v <= 1.15, "x",
         f"CPU (client+server): {fmt(ratio(cpu('upsert_first'), cpu('copy')))}x"),
        ("next month >= 5.5x faster than the course", ratio(course_next, upsert_next), lambda v: v >= 5.5, "x",
         f"CPU: {fmt(ratio(cpu('course_next'), cpu('upsert_next')))}x"),
        ("same month again < 1/3 of first load", ratio(same_s, upsert_s), lambda v: v < 1 / 3, "x", ""),
        ("DAG month <= serial keyed raw-COPY floor", ratio(dag_month, floor_s), lambda v: v <= 1, "x",
         f"wall {fmt(dag[NEXT].wall_s) if dag.get(NEXT) else 'NA'} s, task sum "
         f"{fmt(dag[NEXT].result.get('task_sum_s')) if dag.get(NEXT) else 'NA'} s, floor {fmt(floor_s)} s"
         + (f"; CPU {fmt(dag_cpu, 1)} s / {cores} cores: >= {fmt(dag_cpu / cores, 1)} s of wall" if dag_cpu else "")
         + (f" ({dag['parameters']})" if dag.get("parameters") else "")),
        ("peak RSS of an upsert process < 256 MB", rss, lambda v: v < 256, "MB", ""),
        ("validation with the month figures <= 1.3x rows alone", ratio(with_figures, s("validate")),
         lambda v: v <= 1.3, "x", f"row rules {fmt(s('validate'))} s + figures and checks against history "
                                  f"{fmt(figures_s)} s = {fmt(with_figures)} s"),
        ("validation, six tables, every row < 15 s", s("validate"), lambda v: v < 15, "s",
         f"with work_mem {VALIDATION_RETRY_WORK_MEM}: {fmt(s('validate_more_memory'))} s" if m.get("validate_more_memory") else ""),
        ("stamping five snapshots < 30 s", snap_s, lambda v: v < 30, "s", ""),
        ("DAG parse < 1 s", parse, lambda v: v < 1, "s", ""),
        ("last month / month 2 (run) <= 1.2", history_growth(per_month_history, "first"), lambda v: v <= 1.2, "x",
         f"{len(per_month_history)} months; CPU (client+server): "
         f"{fmt(history_growth(per_month_history, 'first', 'cpu'), 3)}x" if per_month_history else ""),
        ("last month / month 2 (re-run) <= 1.2", history_growth(per_month_history, "again"), lambda v: v <= 1.2, "x",
         f"CPU: {fmt(history_growth(per_month_history, 'again', 'cpu'), 3)}x" if per_month_history else ""),
        ("Airflow CPU per DAG month <= 10 s", dag.get("airflow_cpu_scheduler_s"), lambda v: v <= 10, "s",
         f"under a running scheduler ({NEXT}; scheduler + dag-processor + API server, idle and the task "
         f"callables' {fmt(scheduled.get('task_code_cpu_s'), 1)} s taken off); `airflow dags test` "
         f"({NEXT}, its tree + the API server, the callables' {fmt(dag.get('task_code_cpu_s'), 1)} s included): "
         f"{fmt(dag.get('airflow_cpu_s'), 1)} s"),
    ]
    print()
    print(f"Targets (set for N=1,000,000 on 2 cores; this run: N={n}):")
    judged = []
    for label, value, test, unit, note in targets:
        verdict = "NA" if value is None else ("met" if test(value) else "NOT met")
        print(f"  {label:<42} {fmt(value, 3 if unit == 'x' else 2):>8} {unit:<3} {verdict:<8} {note}")
        judged.append({"target": label, "value": value, "unit": unit, "verdict": verdict, "note": note})
    validated = m["validate"].result["tables"] if m.get("validate") and m["validate"].ok else None
    save_results(n, judged, validated, load)
    print()
    print("In the BENCH line, upsert_s, copy_floor_s and vs_floor are the first load (empty tables); course_s and "
          "speedup_vs_course the next month (course next / upsert next).")
    return (f"BENCH n={n} upsert_s={fmt(upsert_s)} course_s={fmt(None if skip_course else course_next)} "
            f"copy_floor_s={fmt(floor_s)} speedup_vs_course={fmt(ratio(course_next, upsert_next))} "
            f"vs_floor={fmt(ratio(upsert_s, floor_s))} reload_unchanged_s={fmt(same_s)} "
            f"peak_rss_mb={fmt(rss, 0)} validate_s={fmt(s('validate'))} validate_figures_s={fmt(with_figures)} "
            f"snapshot_s={fmt(snap_s)} "
            f"dag_month_s={fmt(None if skip_dag else dag_month)} months={len(per_month_history)} "
            f"history_n={fmt(history.result['n'] if per_month_history else None)} "
            f"month_growth={fmt(history_growth(per_month_history, 'first'))} "
            f"restamp_growth={fmt(history_growth(per_month_history, 'again'))} "
            f"airflow_cpu_s={fmt(dag.get('airflow_cpu_s'), 1)} "
            f"airflow_cpu_scheduler_s={fmt(dag.get('airflow_cpu_scheduler_s'), 1)} "
            f"task_code_cpu_s={fmt(dag.get('task_code_cpu_s'), 1)}")


def save_results(n: int, judged: list[dict], validated: dict | None, load: tuple) -> None:
    """Keep this run's measured targets in bench/results.json, per N (docs/performance.md is rendered
    from it): each target's latest figure with its date and the machine's load; a target this run
    did not measure (a SKIP_ flag) keeps the figure of the run that last did."""
    saved = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.exists() else {}
    kept = saved.setdefault(str(n), {"targets": {}})
    stamp = {"measured": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
             "load_average": [round(load[0][0], 2), round(load[1][0], 2)]}
    for target in judged:
        if target["value"] is not None:
            kept["targets"][target["target"]] = {**{k: v for k, v in target.items() if k != "target"}, **stamp}
    if validated:
        kept["validation"] = {"tables": {name: {"row_rules_s": round(t["s"], 2), "figures_s": round(t["figures_s"], 2)}
                                         for name, t in validated.items() if t.get("figures_s") is not None}, **stamp}
    RESULTS_JSON.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    from streamflow_dev import performance_doc

    print(f"  {RESULTS_JSON.relative_to(ROOT)} kept; {performance_doc.OUTPUT.relative_to(ROOT)}: "
          f"{'rewritten' if performance_doc.write() else 'unchanged'}")


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=int(os.environ.get("N") or DEFAULT_N), help="users in month_000")
    parser.add_argument("--skip-course", action="store_true", default=flag("SKIP_COURSE"))
    parser.add_argument("--skip-dag", action="store_true", default=flag("SKIP_DAG"))
    parser.add_argument("--skip-anatomy", action="store_true", default=flag("SKIP_ANATOMY"))
    parser.add_argument("--history-n", type=int, default=int(os.environ.get("HISTORY_N") or 0),
                        help=f"users of the history phase (default: N, at most {HISTORY_N_CAP:,})")
    parser.add_argument("--plot", type=Path, metavar="HISTORY_JSON",
                        help="only redraw bench/history.svg from a history phase's figures (bench/history.json)")
    parser.add_argument("--months", type=int, default=int(os.environ.get("MONTHS") or DEFAULT_MONTHS),
                        help="months of the history phase (below 3: no history phase)")
    args = parser.parse_args()
    if args.phase:
        return child_main(args.phase)
    if args.plot:
        figures = json.loads(args.plot.read_text(encoding="utf-8"))
        plot_history(figures["months"], figures["n"], HISTORY_PLOT)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on `kill`
    from streamflow import months

    started = time.perf_counter()
    env = child_env()
    seed = int(os.environ.get("BENCH_SEED") or SEED)
    data_root = Path(os.environ.get("BENCH_DATA_DIR") or ROOT / ".bench-data")
    history_n = args.history_n or min(args.n, HISTORY_N_CAP)
    data, _ = ensure_data(args.n, seed, data_root, env, max(args.months, 2) if history_n == args.n else 2)
    history_data = data if history_n == args.n else ensure_data(history_n, seed, data_root, env, args.months)[0]
    server = Server()
    global SERVER_CPU
    SERVER_CPU = ServerCpu(server.pgdata) if server.pgdata else None
    print(f"server: {server.kind}", flush=True)
    load_start = os.getloadavg()
    m: dict = {}
    try:
        folder = {month: str(data / month) for month in (FIRST, NEXT)}
        as_of = months.month_from_name(FIRST).as_of.isoformat()

        copy_db = server.database("copy")
        server.checkpoint()
        m["copy"] = phase("keyed raw COPY floor, month_000", "copy_floor",
                          {"conninfo": copy_db.conninfo(), "folder": folder[FIRST]}, env)

        upsert_db = server.database("upsert")
        server.checkpoint()
        m["upsert_first"] = phase("upsert, first load", "upsert", {"conninfo": upsert_db.conninfo(), "folder": folder[FIRST]}, env)
        # As in the DAG, the first month is stamped before the next one may load.
        server.checkpoint()
        m["snapshot"] = phase(f"snapshot stamping, as_of {as_of}", "snapshot",
                              {"conninfo": upsert_db.conninfo(), "as_of": as_of}, env)
        for key, label in (("upsert_next", "upsert, next month"), ("upsert_same", "upsert, same month again")):
            server.checkpoint()
            m[key] = phase(label, "upsert", {"conninfo": upsert_db.conninfo(), "folder": folder[NEXT]}, env)

        if not args.skip_course:
            course_db = server.database("course")
            for key, month, label in (("course_first", FIRST, "course, first load"), ("course_next", NEXT, "course, next month")):
                server.checkpoint()
                m[key] = phase(label, "course", {"url": course_db.url("postgresql+psycopg2", course_db.database),
                                                 "folder": folder[month]}, env)

        server.checkpoint()
        timeout = os.environ.get("BENCH_VALIDATE_TIMEOUT") or "120s"
        validate_db = server.database("validate")
        m["validate"] = phase(f"validation, six tables, {NEXT} staged", "validate",
                              {"url": with_options(validate_db, f"-c statement_timeout={timeout}"),
                               "conninfo": validate_db.conninfo(), "folder": folder[NEXT]}, env)
        dag_parameters = {}
        if not m["validate"].ok:
            # Show why, then measure what validation (and the DAG) would take with memory enough for the plan.
            m["validate_reason"] = failure_reason(m["validate"])
            print(f"  validation failed: {m['validate_reason']}", flush=True)
            server.checkpoint()
            retry_db = server.database("validate_retry")
            m["validate_more_memory"] = phase(f"validation, six tables, work_mem {VALIDATION_RETRY_WORK_MEM}", "validate", {
                "url": with_options(retry_db, f"-c statement_timeout={timeout} -c work_mem={VALIDATION_RETRY_WORK_MEM}"),
                "conninfo": retry_db.conninfo(), "folder": folder[NEXT], "figures": False}, env)
            dag_parameters = {"work_mem": VALIDATION_RETRY_WORK_MEM}
        if args.months >= 3 and m["validate"].ok:
            history_db = server.database("history")
            server.checkpoint()
            m["history"] = phase(f"history: {args.months} months of {history_n} users, each run then re-run", "history",
                                 {"conninfo": history_db.conninfo(), "url": history_db.url("postgresql+psycopg", history_db.database),
                                  "data": str(history_data), "months": args.months,
                                  "pgdata": str(server.pgdata) if server.pgdata else None}, env, progress="    month_")
            if m["history"].ok:
                m["history"].result["n"] = history_n
                plot_history(m["history"].result["months"], history_n, HISTORY_PLOT)
                HISTORY_PLOT.with_suffix(".json").write_text(json.dumps(
                    {"n": history_n, "months": m["history"].result["months"]}, indent=1) + "\n", encoding="utf-8")
                print(f"  plot: {HISTORY_PLOT.relative_to(ROOT)} (figures: {HISTORY_PLOT.with_suffix('.json').name})")
                # The page's figures come from the JSON just written: regenerate it now, not by hand later.
                from streamflow_dev import performance_doc

                changed = performance_doc.write()
                print(f"  {performance_doc.OUTPUT.relative_to(ROOT)}: {'rewritten' if changed else 'unchanged'}")
        if not args.skip_dag:
            if dag_parameters:
                print(f"  DAG: runs on a warehouse with work_mem {VALIDATION_RETRY_WORK_MEM} (validation fails without it);"
                      " dag_month_s is reported NA", flush=True)
            m["dag"] = run_dag_months(server, data, env, **dag_parameters)
            m["dag"]["parameters"] = dag_parameters
        # Last: its rolled-back loads leave dead rows that autovacuum would clean during the next phase.
        if not args.skip_anatomy:
            server.checkpoint()
            m["anatomy"] = phase("anatomy of a first load (users, usage_agg_30d)", "anatomy",
                                 {"conninfo": server.database("anatomy").conninfo(), "folder": folder[FIRST]}, env)
    finally:
        try:
            line = report(args.n, data, server, m, args.skip_course, args.skip_dag, (load_start, os.getloadavg()))
            if sys.exc_info()[0] is not None:  # interrupted: still end with what was measured
                print(line, flush=True)
        finally:
            server.close()
    failed = [key for key, value in m.items() if isinstance(value, Measured) and not value.ok]
    failed += [f"dag.{key}" for key, value in (m.get("dag") or {}).items() if isinstance(value, Measured) and not value.ok]
    scheduled = (m.get("dag") or {}).get("scheduler") or {}
    failed += [f"dag.scheduler.{month}" for month, found in scheduled.get("months", {}).items() if not found["ok"]]
    failed += ["dag.scheduler"] if scheduled.get("error") else []
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s" + (f"; FAILED phases: {failed}" if failed else ""))
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
