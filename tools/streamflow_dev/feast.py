"""The Feast repo (feature_repo/) against a warehouse, started from Airflow's venv: `make feast-check`, `make feast`.

Feast runs in a venv of its own, .venv-feast (`make feast-venv`: feature_repo/requirements.txt with its
constraints), so its pins never meet Airflow's. This side only turns warehouse settings into the
environment feature_store.yaml reads (`${VAR}`) and starts Feast's processes there.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from streamflow.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from streamflow_dev.env import PostgresSettings

FEATURE_REPO = PROJECT_ROOT / "feature_repo"
FEAST_VENV = PROJECT_ROOT / ".venv-feast"
#: The registry and online store of the local repo (STREAMFLOW_FEAST_DIR overrides it).
DEFAULT_FEAST_DIR = PROJECT_ROOT / ".state" / "feast"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def feast_dir(values: dict[str, str]) -> Path:
    configured = values.get("STREAMFLOW_FEAST_DIR")
    return (PROJECT_ROOT / configured).resolve() if configured else DEFAULT_FEAST_DIR


def feast_environment(pg: PostgresSettings, sslmode: str | None, state_dir: Path, repo: Path = FEATURE_REPO,
                      **extra: str) -> dict[str, str]:
    """This process's environment plus what feature_store.yaml substitutes; `extra` on top (e.g. PGTZ).

    `repo` is the feature repo whose definitions the check imports (a test may hand it a changed copy).

    Raises:
        SystemExit: sslmode missing or unknown (Feast's default, require, would meet a server without TLS),
            or a value feature_store.yaml cannot hold (its values are single-quoted YAML).
    """
    if sslmode not in SSLMODES:
        raise SystemExit(f"POSTGRES_SSLMODE={sslmode!r}: set it in .env or the environment to one of "
                         f"{', '.join(SSLMODES)} (disable for the loopback dev server, which has no TLS)")
    values = {"POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": pg.database,
              "POSTGRES_USER": pg.user, "POSTGRES_PASSWORD": pg.password, "POSTGRES_SSLMODE": sslmode,
              "STREAMFLOW_FEAST_DIR": str(state_dir)}
    unfit = [key for key, value in values.items() if "'" in value or "\n" in value]
    if unfit:
        raise SystemExit(f"{', '.join(unfit)}: a quote or a newline cannot go through feature_store.yaml's "
                         "${VAR} substitution (its values are single-quoted)")
    env = {**os.environ, **values, **extra}
    # The repo first (the check imports its definitions), include/ for the table registry, tools/ for the check.
    env["PYTHONPATH"] = os.pathsep.join(map(str, (repo, PROJECT_ROOT / "include", PROJECT_ROOT / "tools")))
    return env


def _require_venv() -> None:
    if not (FEAST_VENV / "bin" / "feast").exists():
        raise SystemExit(f"{FEAST_VENV.name} has no Feast: run `make feast-venv`")


def run_check(env: dict[str, str], *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """`python -m streamflow_feast.check` in the Feast venv: feast apply, then the comparisons."""
    _require_venv()
    return subprocess.run([str(FEAST_VENV / "bin" / "python"), "-m", "streamflow_feast.check", *args], env=env,
                          cwd=PROJECT_ROOT, capture_output=capture, text=True, check=False)


def run_cli(env: dict[str, str], *args: str) -> int:
    """Any `feast` command on feature_repo/ with the warehouse settings."""
    _require_venv()
    return subprocess.run([str(FEAST_VENV / "bin" / "feast"), "--chdir", str(FEATURE_REPO), *args], env=env,
                          check=False).returncode
