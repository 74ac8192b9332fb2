"""A Citus cluster on loopback for tests: a coordinator and workers.

Citus is not in the package registries reachable here; ``shared/citus/build.sh``
builds it for Debian's PostgreSQL 15 (CI runs it). `start_citus` initialises
each node with that PostgreSQL (``shared_preload_libraries = 'citus'``,
trust authentication, loopback only), as the ``postgres`` user when we are
root, and `CitusCluster.create_database` makes a database on every node with
the extension and the workers registered: Citus does not propagate
``CREATE DATABASE``, and its node list lives in each database.

`CitusTestDatabases` is the plugin's `TestDatabases` on a cluster: an app's
test module that overrides the ``plinth_databases`` fixture with it runs its
tests (``client``, ``db_session``) on a migrated Citus database instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, text
from sqlalchemy.engine import make_url

from plinth.embedded.ports import HOST, free_port
from plinth.testing.databases import TestDatabases

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from plinth.project import AppSpec

__all__ = ["INSTALL", "CitusCluster", "CitusTestDatabases", "find_citus", "start_citus"]

INSTALL = "bash ../shared/citus/build.sh (Citus 13.2.2 for Debian's PostgreSQL 15)"


def find_citus() -> Path | None:
    """The bin directory of a PostgreSQL that has Citus installed, or None."""
    for pg_config in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_config"), reverse=True):
        libdir = subprocess.run(
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if libdir and (Path(libdir) / "citus.so").exists():
            return pg_config.parent
    return None


@dataclass
class CitusCluster:
    """A coordinator and its workers, each a PostgreSQL on a loopback port."""

    bin_dir: Path
    directory: Path
    coordinator: int
    workers: list[int]
    _nodes: list[Path] = field(default_factory=list, repr=False)

    def url(self, database: str = "postgres", port: int | None = None) -> URL:
        """asyncpg URL of `database` on the coordinator (or the node on `port`)."""
        return make_url(
            f"postgresql+asyncpg://postgres@{HOST}:{port or self.coordinator}/{database}"
        )

    async def create_database(self, name: str) -> URL:
        """`name` on every node, with the extension, the workers registered; its URL."""
        from plinth.db.scratch import create_database, small_engine

        for port in (self.coordinator, *self.workers):
            url = await create_database(self.url(port=port), name)
            engine = small_engine(url)
            try:
                async with engine.begin() as connection:
                    await connection.execute(text("CREATE EXTENSION citus"))
            finally:
                await engine.dispose()
        engine = small_engine(self.url(name))
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("SELECT citus_set_coordinator_host(:host, :port)"),
                    {"host": HOST, "port": self.coordinator},
                )
                for port in self.workers:
                    await connection.execute(
                        text("SELECT citus_add_node(:host, :port)"), {"host": HOST, "port": port}
                    )
        finally:
            await engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        """Stop every node (fast shutdown)."""
        for data in self._nodes:
            _run([str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)])


class CitusTestDatabases(TestDatabases):
    """One migrated database per app on a Citus cluster (`TestDatabases` elsewhere)."""

    __test__ = False

    def __init__(self, cluster: CitusCluster) -> None:
        super().__init__(cluster.url())
        self.cluster = cluster

    async def engine_for(self, app: AppSpec) -> AsyncEngine:
        """The engine on `app`'s Citus database: made on every node, migrated to head
        on the coordinator (where the migrations distribute the tables)."""
        from plinth import migrations
        from plinth.db.scratch import small_engine

        if app.path not in self.engines:
            url = await self.cluster.create_database(f"plinth_citus_{app.name}_{os.getpid()}")
            engine = small_engine(app.database.settings.with_driver(url))
            async with engine.connect() as connection:
                await migrations.upgrade(connection, app.migrations)
            self.engines[app.path] = engine
        return self.engines[app.path]


def start_citus(directory: Path, *, workers: int = 2) -> CitusCluster:
    """Initialise and start a coordinator and `workers` workers under `directory`."""
    bin_dir = find_citus()
    if bin_dir is None:
        raise FileNotFoundError(f"Citus is not installed: {INSTALL}")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(directory, 0o755)
        shutil.chown(directory, user.pw_uid, user.pw_gid)
    ports = [free_port() for _ in range(workers + 1)]
    cluster = CitusCluster(bin_dir, directory, ports[0], ports[1:])
    try:
        for index, port in enumerate(ports):
            data = directory / f"node{index}"
            _check(_run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"]),
                   "initdb")  # fmt: skip
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "shared_preload_libraries = 'citus'\n"
                    f"listen_addresses = '{HOST}'\nport = {port}\n"
                    f"unix_socket_directories = '{data}'\n"
                    "max_connections = 100\nfsync = off\nsynchronous_commit = off\n"
                    "citus.enable_unsafe_triggers = on\n"
                )
            cluster._nodes.append(data)
            log = directory / f"node{index}.log"
            _check(_run([str(bin_dir / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(log)]),
                   f"start node {index}")  # fmt: skip
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        args = ["runuser", "-u", "postgres", "--", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(args, cwd="/", env=env, capture_output=True, text=True, check=False)


def _check(result: subprocess.CompletedProcess[str], action: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"Citus cluster: {action} failed: {result.stderr.strip()}")
