"""include/airflow_local_settings.py: the processes that fork tasks import the tasks' modules once, before forking."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INCLUDE = Path(__file__).resolve().parents[2] / "include"


@pytest.mark.parametrize(("argv", "forks"), [
    (["airflow", "scheduler"], True),
    (["airflow", "dags", "test", "ingest_month"], True),
    (["airflow", "celery", "worker"], True),
    (["airflow", "api-server", "--port", "8080"], False),
    (["airflow", "dag-processor"], False),
    (["airflow", "dags", "list"], False),
    (["python", "-m", "pytest"], False),
])
def test_only_processes_that_fork_tasks_preload(argv, forks, monkeypatch):
    monkeypatch.delenv("STREAMFLOW_PRELOAD_TASK_MODULES", raising=False)
    sys.path.insert(0, str(INCLUDE))
    try:
        import airflow_local_settings
    finally:
        sys.path.remove(str(INCLUDE))
    assert airflow_local_settings.forks_task_processes(argv) is forks
    monkeypatch.setenv("STREAMFLOW_PRELOAD_TASK_MODULES", "0")
    assert airflow_local_settings.forks_task_processes(argv) is False


def test_a_forked_task_inherits_the_modules_imported_before_the_fork():
    """In a process started as `airflow dags test`, the first fork imports the modules first (a light
    stand-in for Great Expectations here): the child has them without importing anything, frozen out of
    its garbage collector's walks (which would touch, and so copy, every inherited page)."""
    script = textwrap.dedent(f"""
        import gc, os, sys
        sys.argv = ["airflow", "dags", "test", "ingest_month"]
        sys.path.insert(0, {str(INCLUDE)!r})
        import airflow_local_settings
        airflow_local_settings.TASK_MODULES = ("xml.dom.minidom", "no_such_module_here")
        assert "xml.dom.minidom" not in sys.modules
        pid = os.fork()
        if pid == 0:
            if "xml.dom.minidom" not in sys.modules:
                os._exit(3)
            parse = sys.modules["xml.dom.minidom"].parseString
            os._exit(4 if any(o is parse for o in gc.get_objects()) else 0)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), "parent", "xml.dom.minidom" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "STREAMFLOW_PRELOAD_TASK_MODULES"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "child 0 parent True", done.stderr
    assert "not pre-imported for tasks: no_such_module_here" in done.stderr
