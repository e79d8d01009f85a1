"""The command line (`make bench`'s settings, `--plot`, `--phase`) and the phases in their order."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import bench
from bench import processes
from bench.child import PHASES, child_main
from bench.dag import run_dag_months
from bench.data import ensure_data
from bench.history import plot_history
from bench.processes import Measured, ServerCpu, child_env, phase
from bench.report import failure_reason, report
from bench.server import Server
from bench.settings import (
    DEFAULT_MONTHS,
    DEFAULT_N,
    FIRST,
    HISTORY_N_CAP,
    HISTORY_PLOT,
    NEXT,
    ROOT,
    SEED,
    VALIDATION_RETRY_WORK_MEM,
)


def with_options(settings, options: str) -> str:
    """SQLAlchemy URL of `settings`' database with libpq `options` (session settings)."""
    from urllib.parse import quote

    return settings.url("postgresql+psycopg", settings.database) + "?options=" + quote(options, safe="")


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def main() -> int:
    parser = argparse.ArgumentParser(description=bench.__doc__.split("\n\n")[0])
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
    # Every phase's server CPU from here on (run_child reads it); BENCH_DSN's server is not ours to read.
    processes.SERVER_CPU = ServerCpu(server.pgdata) if server.pgdata else None
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
