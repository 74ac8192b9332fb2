"""A PostgreSQL data directory's ``postmaster.pid``: is its server up, ready, or stale?

`wait_for_running` answers for a directory another process may be starting
or stopping; `clear_stale_lock` removes what a killed server left behind once
nothing of it is left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from pathlib import Path
from typing import NamedTuple

from plinth.embedded.ports import HOST as _HOST
from plinth.embedded.process import process_state
from plinth.errors import EmbeddedServerError

__all__ = [
    "WAIT_SECONDS",
    "PidFile",
    "answers",
    "clear_stale_lock",
    "postmaster_pid",
    "read_pid_file",
    "ready_port",
    "wait_for_running",
]

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
WAIT_SECONDS = 30.0
"""How long a server may stay starting or stopping before we give up on it."""


class PidFile(NamedTuple):
    pid: int
    port: int | None
    socket_dir: str
    shm_id: int | None
    status: str


def read_pid_file(data_dir: Path) -> PidFile | None:
    """postmaster.pid's fields, or None if it is absent or half written."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    field = [line.strip() for line in lines] + [""] * 8
    shm = field[6].split()
    return PidFile(
        pid,
        int(field[3]) if field[3].isdigit() else None,
        field[4],
        int(shm[1]) if len(shm) == 2 and shm[1].isdigit() else None,
        field[7],
    )


def postmaster_pid(data_dir: Path) -> int | None:
    info = read_pid_file(data_dir)
    return (
        info.pid if info is not None and process_state(info.pid, "postgres") == "running" else None
    )


def ready_port(data_dir: Path) -> int | None:
    """The port of a running, ready server for ``data_dir``, else None."""
    info = read_pid_file(data_dir)
    if info is None or info.port is None or info.status != "ready":
        return None
    return (
        info.port
        if process_state(info.pid, "postgres") == "running" and answers(info.port)
        else None
    )


def wait_for_running(data_dir: Path) -> int | None:
    """The port of a server that is up or coming up; None once none is left."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        port = ready_port(data_dir)
        if port is not None:
            return port
        info = read_pid_file(data_dir)
        if info is None:
            return None
        state = process_state(info.pid, "postgres")
        if state == "gone":
            return None  # postgres itself checks for orphaned backends
        if state in ("zombie", "other"):
            if clear_stale_lock(data_dir, info):
                return None
        elif info.status == "ready":
            raise EmbeddedServerError(
                f"A PostgreSQL server (pid {info.pid}) runs on {data_dir} but does not "
                f"answer on {_HOST}:{info.port}. Stop it (kill -INT {info.pid}) and try again."
            )
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"The PostgreSQL server (pid {info.pid}) of {data_dir} stayed "
                f"{info.status or state!r} for {WAIT_SECONDS:.0f} s. Stop every process "
                "using that directory and try again."
            )
        time.sleep(0.05)


def clear_stale_lock(data_dir: Path, info: PidFile) -> bool:
    """Remove the lock files of a dead postmaster once no backend of it is left.

    A killed postmaster stays a zombie until its parent (often init, which may
    reap late or never) collects it, and a pid can be reused after a container
    restart; postgres refuses to start while that pid exists. Its shared memory
    segment tells whether orphaned backends still run.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(info.pid, os.WNOHANG)
    if not _shm_unused(info.shm_id):
        return False
    (data_dir / "postmaster.pid").unlink(missing_ok=True)
    if info.socket_dir and info.port is not None:
        socket_lock = Path(info.socket_dir, f".s.PGSQL.{info.port}.lock")
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(socket_lock.read_text().split()[0]) == info.pid:
                socket_lock.unlink()
    return True


def _shm_unused(shm_id: int | None) -> bool:
    if shm_id is None:
        return True
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        fields = row.split()
        if fields[1] == str(shm_id):
            return fields[6] == "0"
    return True


def answers(port: int) -> bool:
    """Whether a PostgreSQL server answers an SSLRequest on the port."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False
