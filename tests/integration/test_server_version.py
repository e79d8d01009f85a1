"""The session's server is the PostgreSQL major the run asked for (STREAMFLOW_PG_MAJOR, default 18)."""

from __future__ import annotations

from streamflow.local import pgserver
from tests.conftest import server_major


def test_server_is_the_requested_major(pg_server):
    assert server_major(pg_server) == pgserver.requested_major()
