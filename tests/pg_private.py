"""A throwaway PostgreSQL server for tests that stop and restart the database.

The shared server of ``VA_TEST_POSTGRES_URL`` serves other tests and must never be stopped, so
fault tests get their own instance: ``initdb`` into a temporary folder, ``pg_ctl start`` on a
free loopback port with trust authentication (loopback only, no password), and :meth:`stop` /
:meth:`start` to make it go away and come back while an app is using it.

Run as root, the server runs as the ``postgres`` OS user (PostgreSQL refuses to run as root) in
a folder owned by it. Without PostgreSQL binaries the fixture skips locally and fails under
``CI=true`` (see :func:`tests.conftest.require_or_skip`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_or_skip

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")


def find_binaries() -> Path | None:
    """The newest folder holding both ``initdb`` and ``pg_ctl`` (Debian, RHEL, source layouts),
    else the folder of ``initdb`` on ``PATH``; ``None`` when PostgreSQL is not installed."""
    candidates: list[Path] = []
    for pattern in _SEARCH:
        root = Path("/")
        candidates += sorted(root.glob(pattern.lstrip("/")),
                             key=lambda p: [int(x) if x.isdigit() else x
                                            for x in p.parent.name.replace("-", ".").split(".")],
                             reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """One PostgreSQL server of our own. Create with :meth:`create`; :meth:`destroy` at the end.

    Attributes
    ----------
    url : str
        SQLAlchemy URL of its ``postgres`` database (user ``postgres``, trust on loopback).
    port : int
        The loopback port it listens on.
    """

    def __init__(self, binaries: Path, folder: Path, port: int, run_as: str | None) -> None:
        self.binaries, self.folder, self.port, self.run_as = binaries, folder, port, run_as
        self.data = folder / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    @classmethod
    def create(cls, binaries: Path) -> PrivatePostgres:
        """``initdb`` a new cluster in a temporary folder and start it."""
        run_as = None
        folder = Path(tempfile.mkdtemp(prefix="va-pg-"))
        if os.geteuid() == 0:
            run_as = "postgres"  # PostgreSQL refuses to run as root
            account = pwd.getpwnam(run_as)
            os.chown(folder, account.pw_uid, account.pw_gid)
        os.chmod(folder, 0o700)
        server = cls(binaries, folder, free_port(), run_as)
        server._run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync")
        server.start()
        return server

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.binaries / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): "
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # Loopback only; its socket in our folder, not /var/run/postgresql (the shared server's).
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.folder} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=50")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server now (``-m fast``: open connections are cut, as in a crash or a
        failover, not waited for)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        command = [str(self.binaries / "pg_ctl"), "-D", str(self.data), "status"]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True).returncode == 0

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            if self.is_running():
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def private_postgres_server() -> PrivatePostgres:
    """A started :class:`PrivatePostgres`, or a skip (a failure under ``CI=true``)."""
    binaries = find_binaries()
    require_or_skip(binaries is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require_or_skip(False, "the 'postgres' OS user (needed to run PostgreSQL as root)")
    # Binaries present but the server does not come up: a real failure, never a skip.
    return PrivatePostgres.create(binaries)


@pytest.fixture(scope="module")
def private_postgres():
    """A private PostgreSQL server for this module (``url``, ``stop()``, ``start()``)."""
    server = private_postgres_server()
    yield server
    server.destroy()
