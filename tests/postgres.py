"""A real PostgreSQL server for the tests, started and stopped by a fixture.

The server binaries come from the system (Debian's `postgresql` package; CI installs
it): `initdb` and `pg_ctl` on PATH, or under /usr/lib/postgresql/*/bin where Debian puts
them. Without them the tests that need a server are skipped, except under CI=true,
where they fail instead. The server is a throwaway cluster in a temporary directory,
listening on 127.0.0.1 only, on a free port, with its Unix socket in that directory too;
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["find_postgres", "postgres_url"]

USER = "charlm"
DATABASE = "postgres"


def find_postgres() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`, or None."""
    found = shutil.which("pg_ctl")
    if found is not None and shutil.which("initdb") is not None:
        return Path(found).resolve().parent
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(bindir) / "pg_ctl").is_file() and (Path(bindir) / "initdb").is_file():
            return Path(bindir)
    return None


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh PostgreSQL server's `postgres` database (user
    `charlm`, no password, trust authentication on loopback)."""
    bindir = find_postgres()
    if bindir is None:
        _missing("PostgreSQL not found: install it (apt-get install postgresql)")
    assert bindir is not None
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            _missing("PostgreSQL cannot run as root and runuser is missing")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            _missing("PostgreSQL cannot run as root and there is no postgres user")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are root's, closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="charlm-postgres-"))
    data, log = root / "data", root / "server.log"
    if prefix:
        shutil.chown(root, "postgres", "postgres")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, check=False
        )

    try:
        made = run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        assert made.returncode == 0, made.stdout + made.stderr
        for _ in range(3):  # another process may take the free port first
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} "
                f"-c unix_socket_directories={root} -c fsync=off"
            )
            started = run(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                "-t", "60", "start",
            )  # fmt: skip
            if started.returncode == 0:
                break
        else:
            pytest.fail(f"PostgreSQL did not start: {log.read_text(errors='replace')[-2000:]}")
        try:
            yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
