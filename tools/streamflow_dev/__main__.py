"""`python -m streamflow_dev COMMAND`: what the Makefile targets run.

Commands: db, run, airflow, airflow-cli ARGS..., dag-test MONTH, psql, reset, stop, checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta

from streamflow import months
from streamflow_dev import checks, env, pgserver
from streamflow_dev.stack import DAG_ID, FINISHED, TRAINING_DAG_ID, Stack

RUN_TIMEOUT_S = 1800
TRAINING_TIMEOUT_S = 300  # after the last month's run: the training_set runs it triggered


def _warehouse():
    values = env.settings()
    pg = env.postgres_settings(values)
    kind = pgserver.ensure_server(pg, env.pgdata(values))
    print(f"warehouse: {pg.host}:{pg.port}/{pg.database} on the {kind}")
    from streamflow.schema import apply_schema

    with _connect(pg) as conn:
        apply_schema(conn)
    return values, pg


def _connect(pg, database=None):
    import psycopg

    return psycopg.connect(pg.conninfo(database), autocommit=True)


def cmd_db(_args) -> int:
    _warehouse()
    return 0


def cmd_checks(_args) -> int:
    _, pg = _warehouse()
    with _connect(pg) as conn:
        print(checks.render(checks.collect(conn)))
    return 0


def _interval_end(run: dict) -> date:
    return datetime.fromisoformat(run["data_interval_end"]).date()


def _expected_interval_ends(values: dict) -> set[date]:
    last = values.get("STREAMFLOW_LAST_MONTH")
    if not last:
        raise SystemExit("set STREAMFLOW_LAST_MONTH (YYYY-MM) so `make run` knows which months to wait for")
    count = months.month_for_year_month(last).index + 1
    return {months.month_for_index(i).as_of + timedelta(days=1) for i in range(count)}


def _report_failures(stack: Stack, runs: list[dict], dag_id: str = DAG_ID) -> None:
    """Name each failed task and show the end of its log; list what did not run because of it."""
    for run in runs:
        if run["state"] != "failed":
            continue
        for task in stack.tasks(dag_id, run["dag_run_id"], "failed"):
            print(f"\nFAILED task {task['task_id']} (try {task['try_number']}) in run {run['dag_run_id']}\n"
                  "end of its log:\n" + "\n".join(stack.task_log(
                      dag_id, run["dag_run_id"], task["task_id"], task["try_number"]).splitlines()[-40:]),
                  file=sys.stderr)
        skipped = [task["task_id"] for task in stack.tasks(dag_id, run["dag_run_id"], "upstream_failed")]
        if skipped:
            print(f"not run because of it: {', '.join(skipped)}", file=sys.stderr)


def _start(stack: Stack) -> None:
    """`airflow standalone`, then the runs its processes cannot finish any more: a run still `running`
    that started before it (an interrupted `make dag-test`, `make run` or `make airflow`) is marked
    failed at once, or, with max_active_runs=1, it would hold back every run after it."""
    stack.stop_all()  # leftovers of an interrupted command
    print("airflow: starting `airflow standalone` (migrates the metadata database first) ...", flush=True)
    stack.up()
    for dag_id in (DAG_ID, TRAINING_DAG_ID):
        _wait_for_dag(stack, dag_id)
        for run in stack.runs(dag_id):
            if run["state"] == "running" and datetime.fromisoformat(run["start_date"]) < stack.started_at:
                stack.fail_run(dag_id, run["dag_run_id"])
                print(f"airflow: run {run['dag_run_id']} of {dag_id} was left running by a process that is gone: "
                      "marked failed", flush=True)


def cmd_run(_args) -> int:
    """Both months through Airflow's own catch-up on a real scheduler + API server, then their training sets."""
    values, pg = _warehouse()
    stack = Stack(env.airflow_environment(values))
    expected = _expected_interval_ends(values)
    started = time.monotonic()
    try:
        _start(stack)
        print(f"airflow: API server on {stack.url}, scheduler, dag-processor and triggerer started", flush=True)
        _rerun_failed_runs(stack)
        # The consumer first: it must be unpaused when the snapshot events arrive to be queued by them.
        stack.set_paused(TRAINING_DAG_ID, False)
        stack.set_paused(DAG_ID, False)
        print(f"airflow: {TRAINING_DAG_ID} and {DAG_ID} unpaused; catch-up covers {len(expected)} month(s)",
              flush=True)
        runs = _wait_for_runs(stack, expected)
        _report_failures(stack, runs)
        stamped = [_interval_end(run) - timedelta(days=1) for run in runs if run["state"] == "success"]
        with _connect(pg) as warehouse:
            training_runs = _wait_for_training_sets(stack, warehouse, stamped)
        _report_failures(stack, training_runs, dag_id=TRAINING_DAG_ID)
    finally:
        stack.stop_all()
    print(f"\n{len(runs)} run(s) of {DAG_ID} in {time.monotonic() - started:.0f} s:")
    for run in runs:
        print(f"  {run['dag_run_id']:<45} {run['state']}")
    print(f"{len(training_runs)} run(s) of {TRAINING_DAG_ID}:")
    for run in training_runs:
        print(f"  {run['dag_run_id']:<45} {run['state']}")
    with _connect(pg) as conn:
        found = checks.collect(conn)
    print("\n" + checks.render(found))
    mismatches = checks.training_set_mismatches(found)
    for problem in mismatches:
        print(f"training set check FAILED: {problem}", file=sys.stderr)
    print(f"\nOpen the UI: `make airflow`, then http://localhost:{stack.port} (trigger {DAG_ID} with "
          '{"month": "month_001"}). `make psql` for SQL, `make stop` to stop the database.')
    ok = all(run["state"] == "success" for run in runs + training_runs) and not mismatches
    return 0 if ok else 1


def _rerun_failed_runs(stack: Stack) -> None:
    """Clear every task of each failed scheduled run, so a fixed file is loaded again from the start.

    Clearing only the failed tasks would re-validate the old data without re-loading it. A failed
    run older than the latest loaded month then fails again on the no-time-travel rule, by design.
    """
    for run in stack.runs(DAG_ID):
        if run["state"] == "failed" and run["run_type"] == "scheduled":
            print(f"airflow: clearing failed run {run['dag_run_id']} so it runs again", flush=True)
            stack.clear_run(DAG_ID, run["dag_run_id"])


def _wait_for_dag(stack: Stack, dag_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not stack.dag_parsed(dag_id):
        if time.monotonic() > deadline:
            raise SystemExit(f"{dag_id} was not parsed within {timeout:.0f} s; see {stack.log_dir}")
        stack.check_alive()
        time.sleep(2)


def _wait_for_runs(stack: Stack, wanted: set[date]) -> list[dict]:
    """Wait until every expected month has a finished scheduled run; return those runs."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: dict[str, str] = {}
    while True:
        runs = [run for run in stack.runs(DAG_ID) if run["run_type"] == "scheduled" and run["data_interval_end"]
                and _interval_end(run) in wanted]
        for run in runs:
            if seen.get(run["dag_run_id"]) != run["state"]:
                print(f"  {run['dag_run_id']}: {run['state']}", flush=True)
                seen[run["dag_run_id"]] = run["state"]
        if {_interval_end(run) for run in runs if run["state"] in FINISHED} >= wanted:
            return runs
        if time.monotonic() > deadline:
            raise SystemExit(f"runs not finished after {RUN_TIMEOUT_S} s: {seen}")
        stack.check_alive()
        time.sleep(2)


def _wait_for_training_sets(stack: Stack, warehouse, as_of_dates: list) -> list[dict]:
    """Wait until each as_of has a training set, or a training_set run failed; return its runs.

    The runs are started by the snapshot events, not by this command: all it can do is wait.
    """
    wanted = {day.isoformat() for day in as_of_dates}
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while True:
        runs = stack.runs(TRAINING_DAG_ID)
        built = set(checks.training_sets(warehouse))
        if built >= wanted and all(r["state"] in FINISHED for r in runs) or any(r["state"] == "failed" for r in runs):
            return runs
        if time.monotonic() > deadline:
            print(f"no training set for {', '.join(sorted(wanted - built))} after {TRAINING_TIMEOUT_S} s: were "
                  f"those months stamped before {TRAINING_DAG_ID} existed? Their events are gone: `make reset`, "
                  "then `make run`", file=sys.stderr)
            return runs
        stack.check_alive()
        time.sleep(2)


def cmd_airflow(_args) -> int:
    """The UI/API, scheduler, dag-processor and triggerer (`airflow standalone`), until Ctrl-C or `make stop`."""
    values, _ = _warehouse()
    stack = Stack(env.airflow_environment(values))
    _start(stack)
    print(f"Airflow UI: {stack.url} (local dev: every user is admin). Ctrl-C or `make stop` to stop.", flush=True)
    try:
        while stack.running("standalone"):
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    # Gone with its PID file still there: it exited by itself (`make stop` removes the file first).
    crashed = (stack.pid_dir / "standalone.pid").exists() and not stack.running("standalone")
    stack.stop_all()
    if crashed:
        print(f"airflow standalone exited:\n{stack.log_tail()}", file=sys.stderr)
        return 1
    print("airflow stopped")
    return 0


def cmd_airflow_cli(args) -> int:
    """Any `airflow` CLI command against the local stack: make airflow-cli ARGS="dags list"."""
    values = env.settings()
    pgserver.ensure_server(env.postgres_settings(values), env.pgdata(values))
    stack = Stack(env.airflow_environment(values))
    if args.args[:2] == ["backfill", "create"]:
        dag_id = args.args[args.args.index("--dag-id") + 1] if "--dag-id" in args.args else DAG_ID
        if not stack.running("standalone"):
            print("note: backfill runs need the scheduler: run `make airflow` in another terminal", file=sys.stderr)
        # A paused DAG's backfill runs would wait in `queued` (a new or `make reset` DAG starts paused).
        stack.airflow("dags", "unpause", dag_id)
        print(f"{dag_id} unpaused so its backfill runs", file=sys.stderr)
    os.execvpe("airflow", ["airflow", *args.args], stack.env)


def cmd_dag_test(args) -> int:
    """One month in-process (`airflow dags test`), against the configured warehouse."""
    months.month_from_name(args.month)  # refuse a bad name before starting anything
    values, _ = _warehouse()
    stack = Stack(env.airflow_environment(values))
    stack.migrate()
    result = stack.airflow("dags", "test", DAG_ID, "--conf", f'{{"month": "{args.month}"}}', check=False,
                           capture=False)
    # `airflow dags test` printed every task log above and exits non-zero when the run failed.
    print(f"\n{DAG_ID} {args.month}: {'success' if result.returncode == 0 else 'failed'}")
    return result.returncode


def cmd_psql(_args) -> int:
    values = env.settings()
    pg = env.postgres_settings(values)
    pgserver.ensure_server(pg, env.pgdata(values))
    psql = pgserver.binaries_dir() / "psql"
    os.execve(str(psql), [str(psql), pg.conninfo()], {**os.environ, "PGPASSWORD": pg.password})


def cmd_reset(_args) -> int:
    """Drop every warehouse table (schema recreated) and forget the DAGs' run history."""
    values, pg = _warehouse()
    with _connect(pg) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    _warehouse()
    stack = Stack(env.airflow_environment(values))
    for dag_id in (DAG_ID, TRAINING_DAG_ID):
        stack.airflow("dags", "delete", dag_id, "--yes", check=False)  # fails only before any migration
    print(f"warehouse emptied (schema recreated); Airflow run history of {DAG_ID} and {TRAINING_DAG_ID} cleared")
    return 0


def cmd_stop(_args) -> int:
    values = env.settings()
    stopped = Stack(env.airflow_environment(values)).stop_all()
    print(f"stopped airflow: {', '.join(stopped) or 'nothing running'}")
    print("stopped embedded PostgreSQL" if pgserver.stop(env.pgdata(values)) else "no embedded PostgreSQL running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamflow_dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in [("db", cmd_db), ("run", cmd_run), ("airflow", cmd_airflow), ("psql", cmd_psql),
                          ("reset", cmd_reset), ("stop", cmd_stop), ("checks", cmd_checks)]:
        commands.add_parser(name, help=handler.__doc__).set_defaults(handler=handler)
    dag_test = commands.add_parser("dag-test", help=cmd_dag_test.__doc__)
    dag_test.add_argument("month", help="month folder, e.g. month_001")
    dag_test.set_defaults(handler=cmd_dag_test)
    cli = commands.add_parser("airflow-cli", help=cmd_airflow_cli.__doc__)
    cli.add_argument("args", nargs=argparse.REMAINDER)
    cli.set_defaults(handler=cmd_airflow_cli)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
