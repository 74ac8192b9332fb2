"""One embedded server, many processes: reference counting with ``flock``.

Several processes share one server (two test runs, tests while ``plinth
serve`` runs), so the server belongs to no single process. Each process that
starts or reuses it holds a shared ``flock`` on the server's *users file*;
`release` drops that hold and stops the server only if an exclusive lock can
then be had, that is when no other process holds one. The kernel drops the
locks of a process that dies, so a crashed user never keeps the server alive.
A starter takes its hold before it looks for a running server, so a release
that is stopping the server makes it wait, and it then starts a fresh one.

Within one process, callers get a handle each and share one descriptor.
Nothing here knows which server it counts: PostgreSQL today, others later.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["forget", "locked", "release", "take_hold"]


@dataclass
class _Hold:
    fd: int
    handles: set[int]


# One shared flock per users file and process, however many callers use the
# server; a frozen server object cannot carry the descriptor itself.
_holds: dict[Path, _Hold] = {}
_holds_lock = threading.Lock()
_handles = itertools.count(1)
# Read-only suffices for flock and opens a file another user created.
_USERS_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC


def take_hold(users: Path) -> int:
    """Count a new caller of this process as a user of the server; return its handle."""
    with _holds_lock:
        hold = _holds.get(users)
        if hold is not None and not _same_file(hold.fd, users):
            # The directory was deleted and made anew: the old lock guards nothing.
            os.close(_holds.pop(users).fd)
            hold = None
        if hold is None:
            fd = os.open(users, _USERS_FLAGS, 0o644)
            try:
                # Blocks while another process's release is stopping the server.
                fcntl.flock(fd, fcntl.LOCK_SH)
            except BaseException:
                os.close(fd)
                raise
            hold = _holds[users] = _Hold(fd, set())
        handle = next(_handles)
        hold.handles.add(handle)
        return handle


def forget(users: Path, handle: int) -> None:
    """Drop `handle` without stopping anything (its start failed)."""
    with _holds_lock:
        _drop_hold(users, handle)


def release(users: Path, handle: int, lock: Path, stop: Callable[[], None]) -> bool:
    """Drop `handle`; call `stop` (under `lock`) if no user is left anywhere.

    Returns True when no other user was left, so the server is now stopped,
    and False when it was left running. Releasing twice is harmless.
    """
    with _holds_lock:
        if not _drop_hold(users, handle):
            return False  # another caller in this process still uses it
        try:
            fd = os.open(users, _USERS_FLAGS, 0o644)
        except FileNotFoundError:
            return True  # the directory is gone, and any server with it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with locked(lock):
                stop()
            return True
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on `path` (created if missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _drop_hold(users: Path, handle: int) -> bool:
    """Forget ``handle``; False while other callers of this process hold on."""
    hold = _holds.get(users)
    if hold is None:
        return True
    hold.handles.discard(handle)
    if hold.handles:
        return False
    os.close(_holds.pop(users).fd)
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino)


def _reset_after_fork() -> None:
    # A forked child keeps the descriptors (and so counts as a user while it
    # lives), but a lock some other thread held at the fork would never be freed.
    global _holds_lock
    _holds_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
