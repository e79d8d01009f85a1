"""A deployment of its own for the fault tests, whose processes they kill (package scope).

A generated month of FAULT_USERS users (`streamflow_dev.generate`, once per session), large enough
that a kill lands while a COPY streams or the publish writes. Retries are shortened
(`STREAMFLOW_RETRY_DELAY_S`), so that the retry the tests wait for comes in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.integration.stack.deployment import dag_parsed, deployed, wait

FAULT_USERS = 200_000


@pytest.fixture(scope="session")
def generated_months(tmp_path_factory):
    """month_000 of FAULT_USERS users, generated once per session."""
    out = tmp_path_factory.mktemp("fault-seeds")
    subprocess.run([sys.executable, "-m", "streamflow_dev.generate", "--users", str(FAULT_USERS), "--months", "1",
                    "--out", str(out)], env={**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'tools'}"}, check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="package")
def fault_deployment(pg_server, generated_months, tmp_path_factory):
    """The stack on the generated month, catch-up limited to January 2024 (month_000), DAG still paused."""
    work = tmp_path_factory.mktemp("fault-stack")
    with deployed(pg_server, work, generated_months, STREAMFLOW_LAST_MONTH="2024-01",
                  STREAMFLOW_RETRY_DELAY_S="2") as running:
        wait(running, "ingest_month to be parsed", lambda: dag_parsed(running))
        yield running
