"""The Airflow side of the local stack: one `airflow standalone` process, and Airflow's REST API.

`airflow standalone` runs and supervises the API server, scheduler, dag-processor and triggerer,
and stops them all on SIGINT (a SIGTERM would orphan them). Its PID is kept in
`<AIRFLOW_HOME>/pids/` so `make stop` can end what `make airflow` or an interrupted `make run` left.
Runs, task states and logs are read through the REST API, as the UI reads them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from streamflow.ids import DAG_ID, TRAINING_DAG_ID

__all__ = ["DAG_ID", "FINISHED", "TRAINING_DAG_ID", "Stack"]  # the ids: the stack's tests and __main__ read them here

FINISHED = ("success", "failed")


class Stack:
    """The Airflow processes of one AIRFLOW_HOME, and a client of their API."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.home = Path(env["AIRFLOW_HOME"])
        self.pid_dir = self.home / "pids"
        self.log_dir = self.home / "process-logs"
        self.port = int(env["AIRFLOW__API__PORT"])
        self.started_at: datetime | None = None
        self._api = None

    def airflow(self, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        """Run one `airflow` CLI command with the stack's environment."""
        result = subprocess.run(["airflow", *args], env=self.env, capture_output=capture, text=True)
        if check and result.returncode != 0:
            output = (result.stdout or "") + (result.stderr or "")
            raise SystemExit(f"airflow {' '.join(args)} failed ({result.returncode}):\n{output[-3000:]}")
        return result

    def start(self, command: str = "standalone") -> subprocess.Popen:
        """`airflow <command>` in its own session (Ctrl-C in the terminal is ours to handle), logging to
        <AIRFLOW_HOME>/process-logs/."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = datetime.now(UTC)
        with (self.log_dir / f"{command}.log").open("ab") as log:
            process = subprocess.Popen(["airflow", command], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        (self.pid_dir / f"{command}.pid").write_text(str(process.pid))
        return process

    def up(self) -> subprocess.Popen:
        """`airflow standalone` (it migrates the metadata database first), once its API answers."""
        process = self.start()
        self.wait_for_api()
        return process

    def wait_for_api(self, timeout: float = 240) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.api.get("monitor/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            self.check_alive()
            time.sleep(1)
        raise SystemExit(f"the API server did not answer at {self.url}; see {self.log_dir}")

    def log_tail(self, command: str = "standalone", chars: int = 3000) -> str:
        path = self.log_dir / f"{command}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self, command: str = "standalone") -> None:
        """Raise with the end of its log if the started process has exited."""
        if not self.running(command) and (self.pid_dir / f"{command}.pid").exists():
            raise SystemExit(f"airflow {command} exited:\n{self.log_tail(command)}")

    def running(self, command: str):
        """The running process a PID file names, or None (gone, a zombie, or the PID reused)."""
        import psutil

        try:
            process = psutil.Process(int((self.pid_dir / f"{command}.pid").read_text()))
            if process.status() != psutil.STATUS_ZOMBIE and "airflow" in " ".join(process.cmdline()):
                return process
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def stop_all(self) -> list[str]:
        """SIGINT each recorded process (standalone then stops its components), SIGKILL what is left after
        30 s; return what was running. Safe to run twice at once: a PID file gone is a process stopped."""
        import psutil

        stopped = []
        for pid_file in sorted(self.pid_dir.glob("*.pid")) if self.pid_dir.exists() else []:
            process = self.running(pid_file.stem)
            pid_file.unlink(missing_ok=True)
            if process is None:
                continue
            with_children = [process, *process.children(recursive=True)]
            try:
                process.send_signal(signal.SIGINT)
            except psutil.NoSuchProcess:
                continue
            _, left = psutil.wait_procs(with_children, timeout=30)
            for leftover in left:
                leftover.kill()
            psutil.wait_procs(left, timeout=10)
            stopped.append(pid_file.stem)
        return stopped

    # --- the REST API (no credentials: the stack runs the simple auth manager with everyone admin)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self):
        import httpx

        if self._api is None:
            self._api = httpx.Client(base_url=f"{self.url}/api/v2/", timeout=60, trust_env=False,
                                     headers={"Accept": "application/json"})
        return self._api

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.api.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}

    def dag_parsed(self, dag_id: str) -> bool:
        """Whether the dag-processor has stored `dag_id`; raises with the import errors if any."""
        errors = self.call("GET", "importErrors")["import_errors"]
        if errors:
            raise SystemExit("the DAG failed to import:\n" + "\n".join(
                f"{error['filename']}:\n{error['stack_trace']}" for error in errors))
        return self.api.get(f"dags/{dag_id}").status_code == 200

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"dags/{dag_id}", json={"is_paused": paused})

    def runs(self, dag_id: str = DAG_ID) -> list[dict]:
        """The latest 100 runs (the API's page limit), oldest first."""
        return self.call("GET", f"dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "-id"})["dag_runs"][::-1]

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def fail_run(self, dag_id: str, run_id: str) -> None:
        self.call("PATCH", self._run_path(dag_id, run_id), json={"state": "failed"})

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """Clear every task of the run: it runs again from the start."""
        self.call("POST", f"{self._run_path(dag_id, run_id)}/clear", json={"dry_run": False})

    def tasks(self, dag_id: str, run_id: str, state: str) -> list[dict]:
        return self.call("GET", f"{self._run_path(dag_id, run_id)}/taskInstances",
                         params={"state": state, "order_by": "start_date"})["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """A task's log as text (each record's event, and the exceptions it carries)."""
        records = self.call("GET", f"{self._run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}")
        lines = []
        for record in records.get("content") or []:
            lines.append(str(record.get("event", "")))
            lines.extend(f"  {detail.get('exc_type')}: {detail.get('exc_value')}"
                         for detail in record.get("error_detail") or [])
        return "\n".join(lines)
