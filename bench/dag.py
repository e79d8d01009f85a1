"""The DAG phases: its parse (in a child process), month_000 and month_001 through
`airflow dags test --use-executor`, then the same months by catch-up on a running scheduler, with
Airflow's own CPU per month."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.figures import fmt
from bench.processes import phase, run_child
from bench.settings import FIRST, NEXT, ROOT

if TYPE_CHECKING:
    from bench.server import Server


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
