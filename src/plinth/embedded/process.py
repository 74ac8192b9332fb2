"""Embedded servers that are one process: Valkey, SeaweedFS.

PostgreSQL comes with ``pg_ctl`` and ``postmaster.pid``; these do not, so
Plinth launches the binary itself, detached in a session of its own, with its
output in ``<name>/server.log``. ``<name>.json`` records the pid, the ports
and the version; a server counts as running when that pid is alive, runs the
expected program (a reused pid does not count) and answers on its port.

Next to the data directory ``<name>/`` live ``<name>.lock`` (held around
start and stop) and ``<name>.users`` (`plinth.embedded.sharing` counts the
processes that use the server; the last one stops it). Ports are the last
ones again when free, else free ones (`plinth.embedded.ports`), all on
127.0.0.1. Secrets (a password, S3 keys) are made once into
``<name>/credentials.json`` (0600, `plinth.embedded.credentials`).

These servers run as the user Python runs as, root included: neither refuses
root, neither needs the unprivileged copy PostgreSQL needs (`_root`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from plinth.embedded import _root, sharing
from plinth.embedded.credentials import load_or_create
from plinth.embedded.home import embedded_home
from plinth.embedded.ports import HOST, free_port, pick_port
from plinth.errors import EmbeddedServerError

__all__ = [
    "Daemon",
    "EmbeddedService",
    "announce",
    "announce_release",
    "process_state",
    "start_daemon",
]

_CREDENTIALS = "credentials.json"
# Our own children, kept so that they can be reaped (and never warned about).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Daemon:
    """One kind of one-process server, as `start_daemon` needs to know it."""

    name: str
    """Directory and file names: ``valkey`` → ``valkey/``, ``valkey.json``, ..."""
    title: str
    """Its name in messages: ``Valkey``."""
    program: str
    """Its process name (``/proc/<pid>/comm``): ``valkey-server``."""
    ports: tuple[str, ...]
    """Names of the ports it listens on; the first is the one clients use."""
    url: str
    """Clients' URL, a template of ``host``, ``port`` and the credentials."""
    binary: Callable[[], Path]
    """The executable (raises `EmbeddedServerError` naming the missing package)."""
    version: Callable[[], str]
    command: Callable[[Path, Path, Mapping[str, int], Mapping[str, str]], list[str]]
    """(binary, data directory, ports, credentials) → the command line."""
    answers: Callable[[Mapping[str, int]], bool]
    """Whether the server answers on its ports (a cheap probe, no credentials)."""
    make_credentials: Callable[[], dict[str, str]]
    prepare: Callable[[Path, Mapping[str, str]], None] = lambda data_dir, credentials: None
    """Write what the command needs (configuration files) before each launch."""
    after_stop: Callable[[Mapping[str, int]], None] = lambda ports: None
    """Clean up what the server leaves behind (sockets outside its directory)."""
    start_timeout: float = 30.0
    stop_timeout: float = 15.0


@dataclass(frozen=True)
class EmbeddedService:
    """A running embedded server; call `release` when done with it."""

    daemon: Daemon = dataclasses.field(repr=False)
    data_dir: Path
    ports: Mapping[str, int]
    pid: int
    version: str
    started_here: bool
    credentials: Mapping[str, str] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    handle: int = dataclasses.field(default=0, repr=False, compare=False)

    @property
    def port(self) -> int:
        """The port clients use."""
        return self.ports[self.daemon.ports[0]]

    @property
    def url(self) -> str:
        """The clients' URL (it may hold a password: never print it)."""
        return self.daemon.url.format(host=HOST, port=self.port, **self.credentials)

    def release(self) -> bool:
        """Stop using the server; stop it unless another process still uses it.

        Returns True when no other user was left, so the server is now stopped.
        """
        home = self.data_dir.parent
        return sharing.release(
            _users_file(home, self.daemon), self.handle, _lock_file(home, self.daemon), self.stop
        )

    def stop(self) -> None:
        """Stop the server now, whoever still uses it."""
        stop_process(self.pid, self.daemon.program, self.daemon.stop_timeout)
        self.daemon.after_stop(self.ports)

    def announce(self) -> None:
        """Print the start-up line (`announce`): started or reused, version, port, data."""
        title = self.daemon.title
        announce(title, self.version, self.port, self.data_dir, self.started_here)

    def release_announced(self) -> bool:
        """`release`, then print whether the server stopped or is left to its other users."""
        stopped = self.release()
        announce_release(self.daemon.title, self.port, stopped)
        return stopped


def announce(title: str, version: str, port: int, data_dir: Path, started_here: bool) -> None:
    """The one start-up line every embedded server prints on stderr."""
    verb = "Started" if started_here else "Reusing"
    print(f"{verb} embedded {title} {version} on {HOST}:{port} (data: {data_dir})", file=sys.stderr)


def announce_release(title: str, port: int, stopped: bool) -> None:
    """The line a released embedded server prints on stderr."""
    if stopped:
        print(f"Stopped embedded {title} on {HOST}:{port}", file=sys.stderr)
    else:
        print(f"Embedded {title} on {HOST}:{port} left running (still in use)", file=sys.stderr)


def start_daemon(daemon: Daemon, project_dir: Path | None = None) -> EmbeddedService:
    """Start or reuse the `daemon` of `project_dir`'s project (default: the cwd's).

    Pair every call with `EmbeddedService.release`.
    """
    home = embedded_home(project_dir)
    _root.make_dirs(home)
    users = _users_file(home, daemon)
    handle = sharing.take_hold(users)
    try:
        service = _start_or_reuse(daemon, home)
    except BaseException:
        sharing.forget(users, handle)
        raise
    return dataclasses.replace(service, handle=handle)


def _users_file(home: Path, daemon: Daemon) -> Path:
    return home / f"{daemon.name}.users"


def _lock_file(home: Path, daemon: Daemon) -> Path:
    return home / f"{daemon.name}.lock"


def _start_or_reuse(daemon: Daemon, home: Path) -> EmbeddedService:
    found = _running(daemon, home)
    if found is not None:
        return found
    with sharing.locked(_lock_file(home, daemon)):
        found = _running(daemon, home, clear=True)
        if found is not None:
            return found
        return _launch(daemon, home)


def _running(daemon: Daemon, home: Path, *, clear: bool = False) -> EmbeddedService | None:
    """The recorded server if it runs and answers; with `clear`, stop one that
    runs but does not answer (under the lock nobody is starting it)."""
    state = _read_state(home / f"{daemon.name}.json")
    if state is None:
        return None
    pid, ports, version = state
    if set(ports) != set(daemon.ports) or process_state(pid, daemon.program) != "running":
        return None
    if not daemon.answers(ports):
        if clear:
            stop_process(pid, daemon.program, daemon.stop_timeout)
        return None
    data_dir = home / daemon.name
    credentials, _ = load_or_create(data_dir / _CREDENTIALS, daemon.make_credentials)
    return EmbeddedService(daemon, data_dir, ports, pid, version, False, credentials)


def _launch(daemon: Daemon, home: Path) -> EmbeddedService:
    data_dir = home / daemon.name
    data_dir.mkdir(mode=0o700, exist_ok=True)
    credentials, _ = load_or_create(data_dir / _CREDENTIALS, daemon.make_credentials)
    daemon.prepare(data_dir, credentials)
    binary = daemon.binary()
    state_file = home / f"{daemon.name}.json"
    previous = _read_state(state_file)
    recorded = dict(previous[1]) if previous is not None else {}
    log = data_dir / "server.log"
    for attempt in range(3):
        ports = _pick_ports(daemon.ports, recorded if attempt == 0 else {})
        offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            proc = subprocess.Popen(
                daemon.command(binary, data_dir, ports, credentials),
                cwd=data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of its starter is not its end
            )
        _children[proc.pid] = proc
        if _wait_until_ready(proc, daemon, ports):
            version = daemon.version()
            tmp = state_file.with_name(f"{state_file.name}.tmp")
            tmp.write_text(json.dumps({"pid": proc.pid, "ports": ports, "version": version}))
            tmp.replace(state_file)
            return EmbeddedService(daemon, data_dir, ports, proc.pid, version, True, credentials)
        stop_process(proc.pid, daemon.program, daemon.stop_timeout)
        if "address already in use" not in _read_from(log, offset).lower():
            break
    tail = "\n".join(_read_from(log, offset).splitlines()[-20:])
    port = ports[daemon.ports[0]]
    raise EmbeddedServerError(
        f"The embedded {daemon.title} in {data_dir} did not start on {HOST}:{port} "
        f"(exit code {proc.returncode}).\nLast lines of {log}:\n{tail}\n"
        f"Fix the cause shown above, or stop every process using {data_dir} and "
        "delete that directory to start afresh."
    )


def _pick_ports(names: tuple[str, ...], recorded: Mapping[str, int]) -> dict[str, int]:
    chosen: dict[str, int] = {}
    for name in names:
        port = pick_port(recorded.get(name))
        while port in chosen.values():
            port = free_port()
        chosen[name] = port
    return chosen


def _wait_until_ready(
    proc: subprocess.Popen[bytes], daemon: Daemon, ports: Mapping[str, int]
) -> bool:
    deadline = time.monotonic() + daemon.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if daemon.answers(ports):
            return True
        time.sleep(0.05)
    return False


def stop_process(pid: int, program: str, timeout: float) -> None:
    """SIGTERM `pid` if it runs `program`, wait for it to exit, SIGKILL after `timeout`."""
    deadline = time.monotonic() + timeout
    signalled = killed = False
    while True:
        child = _children.get(pid)
        if child is not None and child.poll() is not None:
            del _children[pid]
        state = process_state(pid, program)
        if state != "running":
            if state == "zombie":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            return
        with contextlib.suppress(ProcessLookupError):
            if not signalled:
                os.kill(pid, signal.SIGTERM)
                signalled = True
            elif not killed and time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                killed = True
            elif killed and time.monotonic() > deadline + 5:
                raise EmbeddedServerError(f"{program} (pid {pid}) did not exit after SIGKILL")
        time.sleep(0.05)


def process_state(pid: int, program: str) -> str:
    """'running' (as `program`), 'zombie', 'other' (a reused pid) or 'gone'."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "running" if not Path("/proc/self").exists() else "gone"
    comm, _, rest = stat_line.partition("(")[2].rpartition(")")
    if rest.split()[0] == "Z" and not _other_threads(pid):
        return "zombie"
    # A multi-threaded server (weed) whose main thread has exited still holds
    # its sockets until its last thread is gone: that counts as running.
    return "running" if comm == program else "other"


def _other_threads(pid: int) -> bool:
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _read_state(state_file: Path) -> tuple[int, dict[str, int], str] | None:
    try:
        state = json.loads(state_file.read_text())
        pid, ports, version = state["pid"], state["ports"], state["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(pid, int) or not isinstance(ports, dict) or not isinstance(version, str):
        return None
    valid = {k: v for k, v in ports.items() if isinstance(v, int) and 0 < v < 65536}
    return pid, valid, version


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""
