"""`python -m streamflow_dev COMMAND`: what the Makefile targets run.

Commands: db, run, airflow, airflow-cli ARGS..., dag-test MONTH, psql, reset, stop, checks,
feast-check [ARGS...], feast ARGS....
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from streamflow import months
from streamflow.settings import PROJECT_ROOT
from streamflow_dev import checks, env, feast, pgserver
from streamflow_dev.stack import DAG_ID, FINISHED, TRAINING_DAG_ID, Stack

RUN_TIMEOUT_S = 1800
TRAINING_TIMEOUT_S = 300  # after the last month's run: the training_set runs it triggered


def _warehouse():
    """The settings, once the warehouse server answers (started if embedded) and has the schema."""
    values = env.settings()
    pg = env.postgres_settings(values)
    print(f"warehouse: {pg.host}:{pg.port}/{pg.database} on the {pgserver.ensure_server(pg, env.pgdata(values))}")
    from streamflow.schema import apply_schema

    with _connect(pg) as conn:
        apply_schema(conn)
    return values, pg


def _connect(pg, database=None):
    import psycopg

    return psycopg.connect(pg.conninfo(database), autocommit=True)


def _poll(stack: Stack, done, timeout: float):
    """Call `done()` every 2 s until it returns something other than None; None after `timeout`."""
    deadline = time.monotonic() + timeout
    while (result := done()) is None and time.monotonic() < deadline:
        stack.check_alive()  # raises with the end of its log if Airflow exited
        time.sleep(2)
    return result


def _interval_end(run: dict):
    return datetime.fromisoformat(run["data_interval_end"]).date() if run["data_interval_end"] else None


def _report_failures(stack: Stack, runs: list[dict], dag_id: str = DAG_ID) -> None:
    """Name each failed task and show the end of its log; list what did not run because of it."""
    for run in (run for run in runs if run["state"] == "failed"):
        for task in stack.tasks(dag_id, run["dag_run_id"], "failed"):
            log = stack.task_log(dag_id, run["dag_run_id"], task["task_id"], task["try_number"])
            print(f"\nFAILED task {task['task_id']} (try {task['try_number']}) in run {run['dag_run_id']}\n"
                  "end of its log:\n" + "\n".join(log.splitlines()[-40:]), file=sys.stderr)
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
        if not _poll(stack, lambda dag_id=dag_id: stack.dag_parsed(dag_id) or None, 300):
            raise SystemExit(f"{dag_id} was not parsed within 300 s; see {stack.log_dir}")
        for run in stack.runs(dag_id):
            if run["state"] == "running" and datetime.fromisoformat(run["start_date"]) < stack.started_at:
                stack.fail_run(dag_id, run["dag_run_id"])
                print(f"airflow: run {run['dag_run_id']} of {dag_id} was left running by a process that is gone: "
                      "marked failed", flush=True)


def last_month_present(values: dict[str, str]) -> str:
    """YYYY-MM of the last month folder under STREAMFLOW_SEEDS_DIR: where `make run` ends an open-ended
    schedule, so that it can finish (a run for the month after would wait for its files)."""
    seeds = Path(values.get("STREAMFLOW_SEEDS_DIR") or "data/seeds")
    present = months.available(seeds if seeds.is_absolute() else PROJECT_ROOT / seeds)
    if not present:
        raise SystemExit(f"no month folder under {seeds}")
    return f"{months.month_from_name(present[-1]).period_start:%Y-%m}"


def cmd_run(_args) -> int:
    """Both months through Airflow's own catch-up on a real scheduler + API server, then their training sets."""
    values, pg = _warehouse()
    if not values.get("STREAMFLOW_LAST_MONTH"):
        values["STREAMFLOW_LAST_MONTH"] = last_month_present(values)
        print(f"airflow: schedule ends at {values['STREAMFLOW_LAST_MONTH']}, the last month present "
              "(STREAMFLOW_LAST_MONTH empty)", flush=True)
    stack = Stack(env.airflow_environment(values))
    count = months.month_for_year_month(values["STREAMFLOW_LAST_MONTH"]).index + 1
    wanted = {months.month_for_index(i).as_of + timedelta(days=1) for i in range(count)}  # interval ends
    started, seen = time.monotonic(), {}
    try:
        _start(stack)
        for run in stack.runs(DAG_ID):  # a fixed file is then loaded again from the start, not only re-validated
            if run["state"] == "failed" and run["run_type"] == "scheduled":
                print(f"airflow: clearing failed run {run['dag_run_id']} so it runs again", flush=True)
                stack.clear_run(DAG_ID, run["dag_run_id"])
        # The consumer first: it must be unpaused when the snapshot events arrive to be queued by them.
        stack.set_paused(TRAINING_DAG_ID, False)
        stack.set_paused(DAG_ID, False)
        print(f"airflow: {TRAINING_DAG_ID} and {DAG_ID} unpaused; catch-up covers {count} month(s)", flush=True)

        def months_finished():  # a backfill's runs count too; manual ones do not
            runs = [r for r in stack.runs(DAG_ID) if r["run_type"] != "manual" and _interval_end(r) in wanted]
            for run in runs:
                if seen.get(run["dag_run_id"]) != run["state"]:
                    print(f"  {run['dag_run_id']}: {run['state']}", flush=True)
                    seen[run["dag_run_id"]] = run["state"]
            return runs if {_interval_end(r) for r in runs if r["state"] in FINISHED} >= wanted else None

        if (runs := _poll(stack, months_finished, RUN_TIMEOUT_S)) is None:
            raise SystemExit(f"runs not finished after {RUN_TIMEOUT_S} s: {seen}")
        _report_failures(stack, runs)
        # The training runs are started by the snapshot events, not by this command: all it can do is wait.
        stamped = {(_interval_end(run) - timedelta(days=1)).isoformat() for run in runs if run["state"] == "success"}
        with _connect(pg) as warehouse:
            def training_done():
                training = stack.runs(TRAINING_DAG_ID)
                if any(r["state"] == "failed" for r in training) or (
                        set(checks.training_sets(warehouse)) >= stamped and all(r["state"] in FINISHED for r in training)):
                    return training
                return None

            if (training_runs := _poll(stack, training_done, TRAINING_TIMEOUT_S)) is None:
                print(f"no training set for every month after {TRAINING_TIMEOUT_S} s: were they stamped before "
                      f"{TRAINING_DAG_ID} existed? Their events are gone: `make reset`, then `make run`", file=sys.stderr)
                training_runs = stack.runs(TRAINING_DAG_ID)
        _report_failures(stack, training_runs, dag_id=TRAINING_DAG_ID)
    finally:
        stack.stop_all()
    for dag_id, dag_runs in ((DAG_ID, runs), (TRAINING_DAG_ID, training_runs)):
        print(f"\n{len(dag_runs)} run(s) of {dag_id} ({time.monotonic() - started:.0f} s in all):")
        print("\n".join(f"  {run['dag_run_id']:<45} {run['state']}" for run in dag_runs))
    with _connect(pg) as conn:
        found = checks.collect(conn)
    print("\n" + checks.render(found))
    mismatches = checks.training_set_mismatches(found)
    for problem in mismatches:
        print(f"training set check FAILED: {problem}", file=sys.stderr)
    print(f"\nOpen the UI: `make airflow`, then http://localhost:{stack.port} (no login: every user is admin, as "
          f'on a dev machine; the compose stack has logins, docs/logins.md). Trigger {DAG_ID} with '
          '{"month": "month_001"}. `make psql` for SQL, `make stop` to stop the database.')
    return 0 if all(run["state"] == "success" for run in runs + training_runs) and not mismatches else 1


def cmd_db(_args) -> int:
    _warehouse()
    return 0


def cmd_checks(_args) -> int:
    _, pg = _warehouse()
    with _connect(pg) as conn:
        print(checks.render(checks.collect(conn)))
    return 0


def cmd_airflow(_args) -> int:
    """The UI/API, scheduler, dag-processor and triggerer (`airflow standalone`), until Ctrl-C or `make stop`."""
    values, _ = _warehouse()
    stack = Stack(env.airflow_environment(values))
    _start(stack)
    print(f"Airflow UI: {stack.url} (local dev, no login: every user is admin). Ctrl-C or `make stop` to stop.", flush=True)
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
    if args.args[:2] != ["backfill", "create"]:
        os.execvpe("airflow", ["airflow", *args.args], stack.env)
    if not stack.running("standalone"):
        print("note: backfill runs need the scheduler: run `make airflow` in another terminal", file=sys.stderr)
    created = stack.airflow(*args.args, check=False, capture=False)
    dag_id = args.args[args.args.index("--dag-id") + 1] if "--dag-id" in args.args else DAG_ID
    if created.returncode == 0 and "--dry-run" not in args.args:
        # The runs of a paused DAG wait in `queued` (a new DAG starts paused, after `make reset` too).
        # Unpaused after the backfill exists, so catch-up does not take its months first.
        stack.airflow("dags", "unpause", dag_id)
        print(f"{dag_id} unpaused so that its backfill runs", file=sys.stderr)
    return created.returncode


def cmd_dag_test(args) -> int:
    """One month in-process (`airflow dags test`), against the configured warehouse."""
    months.month_from_name(args.month)  # refuse a bad name before starting anything
    values, _ = _warehouse()
    stack = Stack(env.airflow_environment({**values, **env.DAGS_TEST_SETTINGS}))
    stack.airflow("db", "migrate")
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


def _feast_environment(values: dict[str, str], pg) -> dict[str, str]:
    return feast.feast_environment(pg, values.get("POSTGRES_SSLMODE"), feast.feast_dir(values))


def _passed_on(args) -> list[str]:
    """The arguments after `--` (the Makefile puts one first, so that `--report ...` is not read as ours)."""
    return args.args[1:] if args.args[:1] == ["--"] else args.args


def cmd_feast_check(args) -> int:
    """feast apply, then Feast's historical features at each stamped month end and mid-month, and its online
    store, against training_examples; non-zero on any difference."""
    values, pg = _warehouse()
    return feast.run_check(_feast_environment(values, pg), *_passed_on(args)).returncode


def cmd_feast(args) -> int:
    """Any `feast` CLI command on feature_repo/ with the warehouse settings: make feast ARGS="feature-views list"."""
    values = env.settings()
    pg = env.postgres_settings(values)
    pgserver.ensure_server(pg, env.pgdata(values))
    return feast.run_cli(_feast_environment(values, pg), *_passed_on(args))


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
    for name, handler in [("feast-check", cmd_feast_check), ("feast", cmd_feast)]:
        passing_on = commands.add_parser(name, help=handler.__doc__)
        passing_on.add_argument("args", nargs=argparse.REMAINDER)
        passing_on.set_defaults(handler=handler)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
