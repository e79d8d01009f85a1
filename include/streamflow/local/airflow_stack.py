"""Start, watch and stop the Airflow processes of the local stack.

Order matters: the API server first (tasks report to it through the Execution API), then the
scheduler and the dag-processor. Every PID is written to `.airflow/pids/` so `make stop` can
end what `make airflow` or an interrupted `make run` left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

DAG_ID = "ingest_month"
TRAINING_DAG_ID = "training_set"  # scheduled on the snapshot assets ingest_month updates


class Stack:
    """Airflow processes started by this checkout (api-server, scheduler, ...)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.home = Path(env["AIRFLOW_HOME"])
        self.pid_dir = self.home / "pids"
        self.log_dir = self.home / "process-logs"
        self.port = int(env["AIRFLOW__API__PORT"])

    def airflow(self, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        """Run one `airflow` CLI command with the stack's environment."""
        result = subprocess.run(["airflow", *args], env=self.env, capture_output=capture, text=True)
        if check and result.returncode != 0:
            output = (result.stdout or "") + (result.stderr or "")
            raise SystemExit(f"airflow {' '.join(args)} failed ({result.returncode}):\n{output[-3000:]}")
        return result

    def migrate(self) -> None:
        self.airflow("db", "migrate")

    def start(self, component: str) -> int:
        """Start `airflow <component>` in its own process group, logging to .airflow/process-logs/."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        args = ["airflow", component, *(["--port", str(self.port)] if component == "api-server" else [])]
        with (self.log_dir / f"{component}.log").open("ab") as log:
            process = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        (self.pid_dir / f"{component}.pid").write_text(str(process.pid))
        return process.pid

    def wait_for_api(self, timeout: float = 180) -> None:
        url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
            self.check_alive("api-server")
            time.sleep(1)
        raise SystemExit(f"the API server did not answer at {url}; see {self.log_dir / 'api-server.log'}")

    def check_alive(self, component: str) -> None:
        """Raise with the end of its log if a started component has exited."""
        pid_file = self.pid_dir / f"{component}.pid"
        if pid_file.exists() and not _alive(int(pid_file.read_text())):
            tail = (self.log_dir / f"{component}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"airflow {component} exited:\n{tail}")

    def start_all(self, components: tuple[str, ...]) -> None:
        self.start("api-server")
        self.wait_for_api()
        for component in components:
            self.start(component)

    def stop_all(self) -> list[str]:
        """SIGTERM each recorded process (it stops its own children), SIGKILL its group after 20 s."""
        stopped = []
        for pid_file in sorted(self.pid_dir.glob("*.pid")) if self.pid_dir.exists() else []:
            pid = int(pid_file.read_text())
            if _alive(pid):
                # The leader only: signalling the whole group at once can hang the scheduler's shutdown.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                stopped.append(pid_file.stem)
            pid_file.unlink()
        return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, ValueError):  # a zombie child counts as gone
        # state is the first field after "(comm)"; comm may contain spaces ("airflow api_ser")
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            os.waitpid(pid, os.WNOHANG)
            return False
    return True


def dag_runs(metadata, dag_id: str = DAG_ID) -> list[dict]:
    """The DAG's runs from Airflow's metadata database (cheaper than a CLI call per poll)."""
    rows = metadata.execute(
        "SELECT run_id, state, run_type, logical_date, data_interval_end, conf FROM dag_run "
        "WHERE dag_id = %s ORDER BY data_interval_end NULLS LAST, run_id", (dag_id,)).fetchall()
    return [dict(zip(("run_id", "state", "run_type", "start", "end", "conf"), row, strict=False)) for row in rows]


def tasks_in_state(metadata, run_id: str, state: str, dag_id: str = DAG_ID) -> list[tuple[str, int]]:
    """(task_id, try_number) of a run's task instances in `state`, in the order they started."""
    return metadata.execute(
        "SELECT task_id, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND state = %s "
        "ORDER BY start_date NULLS LAST, task_id", (dag_id, run_id, state)).fetchall()


def task_log_tail(home: Path, run_id: str, task_id: str, lines: int = 40, dag_id: str = DAG_ID) -> str:
    """End of a task's log file, rendered from Airflow's JSON lines to plain text."""
    candidates = sorted((home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt=*.log"))
    if not candidates:
        return "(no log file found)"
    rendered = []
    for raw in candidates[-1].read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
            rendered.append(f"[{record.get('level', '')}] {record.get('event', raw)}")
            if record.get("error_detail"):
                for detail in record["error_detail"]:
                    rendered.append(f"  {detail.get('exc_type')}: {detail.get('exc_value')}")
        except ValueError:
            rendered.append(raw)
    return "\n".join(rendered[-lines:])
