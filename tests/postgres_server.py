"""A throwaway PostgreSQL server for the shared-history tests, on a loopback port.

``PYTEST_ENERGY_TEST_POSTGRES_URL`` names a server to use instead (a database
the tests may create databases in). Otherwise Debian's ``postgresql`` binaries
(``initdb``, ``pg_ctl``) start a cluster in a temporary folder, listening on
127.0.0.1 only, with a password, so the tests also see that it is never shown.
PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres``
user. Without binaries or psycopg, every test that needs the server is skipped
with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

URL_ENV = "PYTEST_ENERGY_TEST_POSTGRES_URL"
#: Set by .ci/run where it installed PostgreSQL: no server is then a failure, not a skip,
#: so that CI never passes with the PostgreSQL tests silently skipped.
REQUIRED_ENV = "PYTEST_ENERGY_REQUIRE_POSTGRES"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{REQUIRED_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


#: The cluster's password: tests check it never reaches an output.
PASSWORD = "s3cret-Pw-15"
USER = "energy"


class Server:
    """A reachable server; each test takes a fresh, empty database of its own."""

    def __init__(self, url: str, cluster: _Cluster | None = None) -> None:
        self.url = url
        self._cluster = cluster

    def stop(self) -> None:
        """Stop the server (a test of an unreachable history); skips on a server not ours."""
        if self._cluster is None:
            pytest.skip(f"the server named by {URL_ENV} is not ours to stop")
        self._cluster.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        assert self._cluster is not None
        self._cluster.pg_ctl(
            "-l", str(self._cluster.log), "-o", self._cluster.options, "-w", "start"
        )

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    """A loopback port nothing listens on (now; the server takes it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


class _Cluster:
    """The throwaway cluster's folder, and how to run ``pg_ctl`` on it."""

    def __init__(self, bin_dir: Path, folder: Path, owner: str | None, port: int) -> None:
        self.bin_dir, self.folder, self.owner = bin_dir, folder, owner
        self.data, self.log = folder / "data", folder / "server.log"
        self.options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -F"

    def start(self) -> None:
        self.pg_ctl("-l", str(self.log), "-o", self.options, "-w", "start")

    def pg_ctl(self, *args: str) -> None:
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args], self.owner, "pg_ctl")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """A server for the session: the one named by the environment, or a throwaway cluster."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable('psycopg is not installed: pip install "pytest-energy[postgres]"')
    given = os.environ.get(URL_ENV)
    if given:
        yield Server(given)
        return
    bin_dir = _binaries()
    if bin_dir is None:
        _unavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl) found: install Debian's postgresql "
            f"package, or set {URL_ENV} to a server's URL"
        )
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
        owner = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="pytest-energy-pg-"))
    if owner:
        shutil.chown(folder, owner)
    secret = folder / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    if owner:
        shutil.chown(secret, owner)
    port = free_port()
    cluster = _Cluster(bin_dir, folder, owner, port)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                USER,
                f"--pwfile={secret}",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            owner,
            "initdb",
        )
        cluster.start()
    except _StartFailed as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"a local PostgreSQL server could not be started: {exc}")
    try:
        yield Server(f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres", cluster)
    finally:
        subprocess.run(
            _as_owner(
                [str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
                owner,
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


class _StartFailed(Exception):
    pass


def _run(command: list[str], owner: str | None, what: str) -> None:
    try:
        done = subprocess.run(
            _as_owner(command, owner), capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _StartFailed(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise _StartFailed(f"{what} exited with {done.returncode}: {tail[0]}")
