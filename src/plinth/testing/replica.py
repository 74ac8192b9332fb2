"""A streaming replica of an embedded server, for tests (``pg_basebackup -R``).

`start_standby` copies a running embedded primary with the wheel's
``pg_basebackup`` and starts the copy as a hot standby on a free loopback
port, as the server user when we are root; `Standby.promote` makes it a
primary (a failover). The directory must be one the
server user can reach (not under pytest's 0700 ``tmp_path`` as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from plinth.embedded import _root
from plinth.embedded.home import ENV_DIR as EMBEDDED_DIR_ENV
from plinth.embedded.ports import HOST, free_port
from plinth.embedded.postgres import EmbeddedServer, bin_dir, run_program, start_embedded

__all__ = ["Standby", "primary_and_standby", "start_standby"]


@dataclass
class Standby:
    """A hot standby streaming from its primary."""

    data_dir: Path
    port: int

    def url(self, driver: str = "asyncpg") -> str:
        """SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+{driver}://postgres@{HOST}:{self.port}/postgres"

    def start(self) -> None:
        """Start it (again), on its port."""
        options = f"-h {HOST} -p {self.port} -k ''"
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        command = [str(bin_dir() / "pg_ctl"), "start", "-w", "-D", str(self.data_dir)]
        _check(run_program([*command, "-l", str(log), "-o", options]), "start the standby")

    def promote(self) -> None:
        """Promote it to a primary (``pg_ctl promote``), waiting until it accepts writes."""
        command = [str(bin_dir() / "pg_ctl"), "promote", "-w", "-D", str(self.data_dir)]
        _check(run_program(command), "promote the standby")

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``immediate`` is a crash)."""
        run_program([str(bin_dir() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data_dir)])


def start_standby(primary: EmbeddedServer, directory: Path) -> Standby:
    """Base-back-up `primary` into ``directory/standby`` and start it as a standby."""
    uid, gid = _root.server_ids()
    data_dir = directory / "standby"
    data_dir.mkdir(mode=0o700)
    log = directory / "standby.log"
    log.touch()
    if os.geteuid() == 0:
        os.chown(data_dir, uid, gid)
        os.chown(log, uid, gid)
    source = ["-h", HOST, "-p", str(primary.port), "-U", "postgres"]
    copy = ["-D", str(data_dir), "-R", "-X", "stream", "-c", "fast"]
    _check(run_program([str(bin_dir() / "pg_basebackup"), *source, *copy]), "copy the primary")
    standby = Standby(data_dir, free_port())
    try:
        standby.start()
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return standby


def _check(result: object, action: str) -> None:
    returncode = getattr(result, "returncode", 1)
    if returncode != 0:
        raise RuntimeError(f"could not {action}: {getattr(result, 'stderr', '')}")


@contextlib.contextmanager
def primary_and_standby(
    prefix: str = "plinth-replica-",
) -> Iterator[tuple[EmbeddedServer, Standby]]:
    """A private embedded primary and its hot standby in a temporary directory,
    stopped and removed afterwards (the project's shared server is not touched)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)  # the server user reaches its directories through it
    (home / "project").mkdir()
    previous = os.environ.get(EMBEDDED_DIR_ENV)
    os.environ[EMBEDDED_DIR_ENV] = str(home / "pg")
    try:
        primary = start_embedded(home / "project")
    finally:
        if previous is None:
            del os.environ[EMBEDDED_DIR_ENV]
        else:
            os.environ[EMBEDDED_DIR_ENV] = previous
    try:
        standby = start_standby(primary, home)
        try:
            yield primary, standby
        finally:
            standby.stop("immediate")
    finally:
        with contextlib.suppress(Exception):  # a test may have stopped it already
            primary.stop()
        shutil.rmtree(home, ignore_errors=True)
