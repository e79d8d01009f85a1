"""`python -m streamflow.local COMMAND`: what the Makefile targets run.

Commands: db, run, airflow, dag-test MONTH, psql, reset, stop, checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

from streamflow import months
from streamflow.local import airflow_stack, checks, env, pgserver
from streamflow.local.airflow_stack import DAG_ID, TRAINING_DAG_ID, Stack

RUN_TIMEOUT_S = 1800
TRAINING_TIMEOUT_S = 300  # after the last month's run: the training_set runs it triggered


def _warehouse():
    values = env.settings()
    pg = env.postgres_settings(values)
    kind = pgserver.ensure_server(pg, env.PGDATA)
    print(f"warehouse: {pg.host}:{pg.port}/{pg.database} on the {kind}")
    import psycopg

    from streamflow.schema import apply_schema

    with psycopg.connect(pg.conninfo()) as conn:
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


def _expected_interval_ends(values: dict) -> list:
    last = values.get("STREAMFLOW_LAST_MONTH")
    if not last:
        raise SystemExit("set STREAMFLOW_LAST_MONTH (YYYY-MM) so `make run` knows which months to wait for")
    year, month = (int(part) for part in last.split("-"))
    count = (year - months.FIRST_MONTH.year) * 12 + month - months.FIRST_MONTH.month + 1
    return [months.month_for_index(i).as_of for i in range(count)]


def _report_failures(stack: Stack, metadata, runs: list[dict], with_logs: bool = True, dag_id: str = DAG_ID) -> None:
    """Name each failed task and show the end of its log; list what did not run because of it."""
    for run in runs:
        if run["state"] != "failed":
            continue
        for task_id, try_number in airflow_stack.tasks_in_state(metadata, run["run_id"], "failed", dag_id):
            print(f"\nFAILED task {task_id} (try {try_number}) in run {run['run_id']}", file=sys.stderr)
            if with_logs:
                print("end of its log:\n" + airflow_stack.task_log_tail(stack.home, run["run_id"], task_id,
                                                                       dag_id=dag_id), file=sys.stderr)
        skipped = [task for task, _ in airflow_stack.tasks_in_state(metadata, run["run_id"], "upstream_failed",
                                                                    dag_id)]
        if skipped:
            print(f"not run because of it: {', '.join(skipped)}", file=sys.stderr)


def cmd_run(_args) -> int:
    """Both months through Airflow's own catch-up on a real scheduler + API server, then their training sets."""
    values, pg = _warehouse()
    stack = Stack(env.airflow_environment(values))
    stack.stop_all()  # leftovers of an interrupted run
    print("airflow: migrating the metadata database ...", flush=True)
    stack.migrate()
    expected = _expected_interval_ends(values)
    started = time.monotonic()
    try:
        stack.start_all(("scheduler", "dag-processor"))
        print(f"airflow: api-server on http://127.0.0.1:{stack.port}, scheduler, dag-processor started", flush=True)
        with _connect(pg, pg.airflow_database) as metadata:
            for dag_id in (DAG_ID, TRAINING_DAG_ID):
                _wait_for_dag(stack, metadata, dag_id)
            _rerun_failed_runs(stack, metadata)
            # The consumer first: it must be unpaused when the snapshot events arrive to be queued by them.
            stack.airflow("dags", "unpause", TRAINING_DAG_ID)
            stack.airflow("dags", "unpause", DAG_ID)
            print(f"airflow: {TRAINING_DAG_ID} and {DAG_ID} unpaused; catch-up covers {len(expected)} month(s)",
                  flush=True)
            runs = _wait_for_runs(stack, metadata, expected)
            _report_failures(stack, metadata, runs)
            stamped = [run["end"].date() - timedelta(days=1) for run in runs if run["state"] == "success"]
            with _connect(pg) as warehouse:
                training_runs = _wait_for_training_sets(stack, metadata, warehouse, stamped)
            _report_failures(stack, metadata, training_runs, dag_id=TRAINING_DAG_ID)
    finally:
        stack.stop_all()
    print(f"\n{len(runs)} run(s) of {DAG_ID} in {time.monotonic() - started:.0f} s:")
    for run in runs:
        print(f"  {run['run_id']:<45} {run['state']}")
    print(f"{len(training_runs)} run(s) of {TRAINING_DAG_ID}:")
    for run in training_runs:
        print(f"  {run['run_id']:<45} {run['state']}")
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


def _rerun_failed_runs(stack: Stack, metadata) -> None:
    """Clear every task of each failed scheduled run, so a fixed file is loaded again from the start.

    Clearing only the failed tasks would re-validate the old data without re-loading it. A failed
    run older than the latest loaded month then fails again on the no-time-travel rule, by design.
    """
    for run in airflow_stack.dag_runs(metadata):
        if run["state"] == "failed" and run["run_type"] == "scheduled":
            when = run["logical_date"].isoformat()
            print(f"airflow: clearing failed run {run['run_id']} so it runs again")
            stack.airflow("tasks", "clear", DAG_ID, "--start-date", when, "--end-date", when, "--yes")


def _wait_for_dag(stack: Stack, metadata, dag_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while metadata.execute("SELECT 1 FROM dag WHERE dag_id = %s", (dag_id,)).fetchone() is None:
        errors = metadata.execute("SELECT filename, stacktrace FROM import_error").fetchall()
        if errors:
            raise SystemExit("the DAG failed to import:\n" + "\n".join(f"{f}:\n{s}" for f, s in errors))
        if time.monotonic() > deadline:
            raise SystemExit(f"{dag_id} was not parsed within {timeout:.0f} s; see {stack.log_dir}")
        stack.check_alive("dag-processor")
        time.sleep(2)


def _wait_for_runs(stack: Stack, metadata, expected_as_of: list) -> list[dict]:
    """Wait until every expected month has a finished scheduled run; return those runs."""
    wanted = {day + timedelta(days=1) for day in expected_as_of}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: dict[str, str] = {}
    while True:
        runs = [r for r in airflow_stack.dag_runs(metadata) if r["end"] is not None and r["end"].date() in wanted
                and r["run_type"] != "manual"]
        for run in runs:
            if seen.get(run["run_id"]) != run["state"]:
                print(f"  {run['run_id']}: {run['state']}", flush=True)
                seen[run["run_id"]] = run["state"]
        finished = {r["end"].date() for r in runs if r["state"] in ("success", "failed")}
        if finished >= wanted:
            return runs
        if time.monotonic() > deadline:
            raise SystemExit(f"runs not finished after {RUN_TIMEOUT_S} s: {seen}")
        for component in ("scheduler", "dag-processor", "api-server"):
            stack.check_alive(component)
        time.sleep(2)


def _wait_for_training_sets(stack: Stack, metadata, warehouse, as_of_dates: list) -> list[dict]:
    """Wait until each as_of has a training set, or a training_set run failed; return its runs.

    The runs are started by the snapshot events, not by this command: all it can do is wait.
    """
    wanted = {day.isoformat() for day in as_of_dates}
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while True:
        runs = airflow_stack.dag_runs(metadata, TRAINING_DAG_ID)
        built = set(checks.training_sets(warehouse))
        if built >= wanted and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        if any(r["state"] == "failed" for r in runs):
            return runs
        if time.monotonic() > deadline:
            print(f"no training set for {', '.join(sorted(wanted - built))} after {TRAINING_TIMEOUT_S} s: were "
                  f"those months stamped before {TRAINING_DAG_ID} existed? Their events are gone: `make reset`, "
                  "then `make run`", file=sys.stderr)
            return runs
        stack.check_alive("scheduler")
        time.sleep(2)


def cmd_airflow(_args) -> int:
    """The UI/API, scheduler, dag-processor and triggerer, until Ctrl-C."""
    values, _ = _warehouse()
    stack = Stack(env.airflow_environment(values))
    stack.stop_all()
    stack.migrate()
    stack.start_all(("scheduler", "dag-processor", "triggerer"))
    print(f"Airflow UI: http://localhost:{stack.port} (local dev: every user is admin). Ctrl-C or `make stop` to stop.")
    try:
        while True:
            for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
                stack.check_alive(component)
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop_all()
    return 0


def cmd_dag_test(args) -> int:
    """One month in-process (`airflow dags test`), against the configured warehouse."""
    months.month_from_name(args.month)  # refuse a bad name before starting anything
    values, pg = _warehouse()
    stack = Stack(env.airflow_environment(values))
    stack.migrate()
    conf = f'{{"month": "{args.month}"}}'
    result = stack.airflow("dags", "test", DAG_ID, "--conf", conf, check=False, capture=False)
    with _connect(pg, pg.airflow_database) as metadata:
        latest = metadata.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (DAG_ID,)).fetchone()
        if latest and latest[1] != "success":
            # `airflow dags test` printed every task log above: name the failures only.
            _report_failures(stack, metadata, [{"run_id": latest[0], "state": "failed"}], with_logs=False)
    ok = result.returncode == 0 and latest is not None and latest[1] == "success"
    print(f"\n{DAG_ID} {args.month}: {latest[1] if latest else 'no run'}")
    return 0 if ok else 1


def cmd_psql(_args) -> int:
    values = env.settings()
    pg = env.postgres_settings(values)
    pgserver.ensure_server(pg, env.PGDATA)
    psql = pgserver.binaries_dir() / "psql"
    os.execve(str(psql), [str(psql), pg.conninfo()], {**os.environ, "PGPASSWORD": pg.password})


def cmd_reset(_args) -> int:
    """Drop every warehouse table (schema recreated) and forget the DAG's run history."""
    values, pg = _warehouse()
    with _connect(pg) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    _warehouse()
    with _connect(pg, pg.airflow_database) as metadata:
        migrated = metadata.execute("SELECT to_regclass('dag_run') IS NOT NULL").fetchone()[0]
    if migrated:
        stack = Stack(env.airflow_environment(values))
        for dag_id in (DAG_ID, TRAINING_DAG_ID):
            stack.airflow("dags", "delete", dag_id, "--yes", check=False)
    print(f"warehouse emptied (schema recreated); Airflow run history of {DAG_ID} and {TRAINING_DAG_ID} cleared")
    return 0


def cmd_stop(_args) -> int:
    stopped = Stack(env.airflow_environment(env.settings())).stop_all()
    print(f"stopped airflow: {', '.join(stopped) or 'nothing running'}")
    print("stopped embedded PostgreSQL" if pgserver.stop(env.PGDATA) else "no embedded PostgreSQL running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamflow.local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in [("db", cmd_db), ("run", cmd_run), ("airflow", cmd_airflow), ("psql", cmd_psql),
                          ("reset", cmd_reset), ("stop", cmd_stop), ("checks", cmd_checks)]:
        commands.add_parser(name, help=handler.__doc__).set_defaults(handler=handler)
    dag_test = commands.add_parser("dag-test", help=cmd_dag_test.__doc__)
    dag_test.add_argument("month", help="month folder, e.g. month_001")
    dag_test.set_defaults(handler=cmd_dag_test)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
