"""The parent side of a phase: its child process run and measured (wall time, peak RSS, client CPU,
and the embedded server's CPU over it)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import fmt
from bench.settings import ENTRY_POINT, RESULT_PREFIX, ROOT

PHASE_TIMEOUT_S = 3600


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
    return run_child(label, [sys.executable, str(ENTRY_POINT), "--phase", name],
                     env={**env, "BENCH_PHASE_ARGS": json.dumps(args)}, progress=progress)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "include"), str(ROOT / "tools"), env.get("PYTHONPATH")]))
    return env
