"""PgBouncer on loopback in front of a test server (Debian's ``pgbouncer``).

`start_pgbouncer` writes a configuration into a directory of its own and
runs PgBouncer in the foreground: any database name maps to the same name on
the server (``* = host=... port=...``), trust authentication for ``postgres``,
transaction pooling by default. PgBouncer refuses to run as root, so as root
it runs as the embedded server's user (``plinth-postgres``), Debian's
``postgres``, or ``nobody``. The ``plinth_pgbouncer`` fixture of the plugin
starts one per test session in front of the test server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL

from plinth.embedded.ports import HOST, free_port

__all__ = ["INSTALL", "PgBouncer", "find_pgbouncer", "start_pgbouncer"]

INSTALL = "apt-get install pgbouncer"


def find_pgbouncer() -> str | None:
    """The ``pgbouncer`` binary, or None when it is not installed."""
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


@dataclass
class PgBouncer:
    """A running PgBouncer; `url` reaches the server's ``postgres`` database through it."""

    url: URL
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def log(self) -> str:
        """PgBouncer's log so far."""
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_pgbouncer(
    server: URL, directory: Path, *, pool_mode: str = "transaction", pool_size: int = 10
) -> PgBouncer:
    """Start PgBouncer in front of `server`, with `pool_size` server connections per database."""
    binary = find_pgbouncer()
    if binary is None:
        raise FileNotFoundError(f"pgbouncer is not installed: {INSTALL}")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (directory / "users.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or HOST} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = {HOST}\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
        f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        # asyncpg and psycopg send these at connect; PgBouncer would refuse them.
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
        "admin_users = postgres\n"
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = _unprivileged_user()
        shutil.chown(directory, user)
        for path in directory.iterdir():
            shutil.chown(path, user)
        command = ["runuser", "-u", user, "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = PgBouncer(server.set(host=HOST, port=port), process, directory)
    deadline = time.monotonic() + 10
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            bouncer.stop()
            raise RuntimeError(f"pgbouncer did not start:\n{bouncer.log}")
        time.sleep(0.05)
    return bouncer


def _unprivileged_user() -> str:
    for name in ("plinth-postgres", "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("no unprivileged user to run pgbouncer as")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False
