"""Airflow cluster policy module (`airflow_local_settings`): imported by every Airflow process at startup.

Its one job here: in the processes that fork task processes (the scheduler, whose LocalExecutor
forks its workers at start and they fork a process per task; `airflow dags test`; a Celery worker),
import once what every task would otherwise import for itself. A forked task inherits those
modules: no Great Expectations import (~3-6 CPU seconds) in each of the six validate tasks, no
Postgres hook / FastAPI (the validation view plugin) / pipeline import in each of the 19 tasks.
Any other process (API server, dag-processor, triggerer, the CLI) returns at once. Airflow finds
this file on `sys.path`: include/ is on PYTHONPATH wherever Airflow runs (image, compose, local stack).

The imports run right before the process's first fork (`os.register_at_fork`), not here: this
module is imported while Airflow itself is still initialising, too early to import its providers.
`STREAMFLOW_PRELOAD_TASK_MODULES=0` turns it off (each task then imports what it needs itself).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys

log = logging.getLogger(__name__)
_preloaded = False

#: What a task of `ingest_month` / `training_set` imports beyond Airflow's core, heaviest first.
TASK_MODULES = (
    "great_expectations",
    "airflow.providers.postgres.hooks.postgres",
    "airflow.sdk",
    "fastapi",
    "streamflow.pipeline",
    "streamflow.validation",
    "streamflow.training",
    "sqlalchemy",
    "psycopg",
)


def forks_task_processes(argv: list[str]) -> bool:
    """`airflow scheduler`, `airflow dags test ...`, `airflow celery worker ...` (unless turned off)."""
    if os.environ.get("STREAMFLOW_PRELOAD_TASK_MODULES", "1").strip().lower() in ("0", "false", "no"):
        return False
    command = argv[1:3]
    return command[:1] == ["scheduler"] or command in (["dags", "test"], ["celery", "worker"])


def preload_task_modules() -> list[str]:
    """Import TASK_MODULES (once: later forks find them loaded); the ones that could not be imported
    are skipped, a task importing them would say why."""
    global _preloaded
    if _preloaded:
        return []
    _preloaded = True  # first, so that a fork during an import does not start over
    missing = []
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        log.warning("not pre-imported for tasks: %s", ", ".join(missing))
    # Out of the collector's reach in the children: the LocalExecutor freezes the heap before forking its
    # workers, but this runs after that freeze, so every task's full collection would walk (and copy,
    # page by page) all of Great Expectations' objects otherwise.
    gc.freeze()
    return missing


if forks_task_processes(sys.argv):
    os.register_at_fork(before=preload_task_modules)
