"""Read replicas: reads go to a replica, writes to the primary, and stay there.

`Replicas` owns one engine per ``DATABASE_REPLICA_URLS`` entry and watches
them: every `interval` seconds it asks each replica how far its replay lags
(0 when it has replayed all it received) and skips one that lags past
``DB_REPLICA_MAX_LAG`` or does not answer, until it is back.

`RoutingSession` is the unit of work's `Session`. Until the unit of work
writes, each statement goes to one replica chosen for the whole unit of work
(its reads see one snapshot of one server); the first write (a flush, an
INSERT/UPDATE/DELETE, ``SELECT ... FOR UPDATE``, any textual SQL) moves it to
the primary, and every later statement stays there (read-your-writes). A unit
of work opened with ``primary=True`` never touches a replica.

Failover: when a replica fails a unit of work's first read with an outage (a
connection lost or refused; nothing loaded yet, nothing written), the replica
is marked down and the statement runs once more on another replica or the
primary, without waiting for the next check; a first read whose primary
connection died runs once more as well (`plinth.db.failover`). A write is
never retried: its error reaches the client as a 503.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from plinth.db.failover import FailoverSession, may_write
from plinth.db.settings import hosts, redact
from plinth.driver_errors import translate_outage

__all__ = ["Replicas", "RoutingSession"]

logger = logging.getLogger("plinth")

# 0 while the replica has replayed everything it received; otherwise the age of
# the last transaction it replayed (an idle primary must not look like lag).
# "<=", not "=": a restarted standby's receiver reports the start of the WAL
# segment it resumed streaming from, behind what it replayed before the restart,
# until the primary next sends WAL; on an idle primary that took 11-30 s, during
# which "=" called it lagging by the age of its last transaction.
_LAG = text(
    "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn()"
    " THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)"
    " END"
)


@dataclass
class _Replica:
    engine: AsyncEngine
    healthy: bool = False
    lag: float | None = None
    reason: str = "not checked yet"


class Replicas:
    """The replica engines, their health, and the choice for a read-only unit of work."""

    def __init__(self, engines: list[AsyncEngine], *, max_lag: float, interval: float) -> None:
        self._replicas = [_Replica(engine) for engine in engines]
        self.max_lag = max_lag
        self.interval = interval
        self._turn = itertools.count()
        self._watcher: asyncio.Task[None] | None = None

    def choose(self) -> AsyncEngine | None:
        """A healthy replica, in turn; None when none is (the primary serves)."""
        healthy = [replica for replica in self._replicas if replica.healthy]
        if not healthy:
            return None
        return healthy[next(self._turn) % len(healthy)].engine

    def mark_down(self, engine: AsyncEngine, reason: str) -> None:
        """Skip `engine` until a check finds it healthy again."""
        for replica in self._replicas:
            if replica.engine is engine:
                if replica.healthy:  # once, not once per concurrent reader that saw it fail
                    logger.warning("replica %s skipped: %s", redact(engine.url), reason)
                replica.healthy, replica.reason = False, reason

    async def check(self, timeout: float = 2.0) -> None:
        """Ask every replica for its lag; mark each healthy or not."""
        await asyncio.gather(*(self._check(replica, timeout) for replica in self._replicas))

    async def _check(self, replica: _Replica, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout), replica.engine.connect() as connection:
                in_recovery, lag = (await connection.execute(_LAG)).one()
        except (OSError, TimeoutError, DBAPIError) as exc:
            replica.healthy, replica.lag, replica.reason = False, None, type(exc).__name__
            return
        replica.lag = float(lag)
        if not in_recovery:
            replica.healthy, replica.reason = False, "not in recovery (promoted?)"
        elif replica.lag > self.max_lag:
            replica.healthy, replica.reason = False, f"lags {replica.lag:.1f} s"
        else:
            replica.healthy, replica.reason = True, "ok"

    def start(self) -> None:
        """Check every `interval` seconds, in the background, until `close`."""
        self._watcher = asyncio.create_task(self._watch(), name="plinth-replica-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def close(self) -> None:
        """Stop watching and dispose of the replica engines."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await asyncio.gather(*(replica.engine.dispose() for replica in self._replicas))

    def report(self) -> list[dict[str, Any]]:
        """Each replica's host, health and lag in seconds, for readiness."""
        return [
            {
                "replica": ",".join(f"{host}:{port}" for host, port in hosts(replica.engine.url)),
                "healthy": replica.healthy,
                "lag_seconds": replica.lag,
                "reason": replica.reason,
            }
            for replica in self._replicas
        ]


class RoutingSession(FailoverSession):
    """A `Session` that reads on a replica until its unit of work writes.

    Configured through its ``info``: ``plinth.primary`` (the primary `Engine`),
    ``plinth.replicas`` (`Replicas`), and ``plinth.on_primary`` (stay on the
    primary, set by ``primary=True`` or by the first write).
    """

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        info = self.info
        if info.get("plinth.on_primary") or self._flushing or may_write(clause):
            info["plinth.on_primary"] = True
            return info["plinth.primary"]
        if "plinth.replica" not in info:
            info["plinth.replica"] = info["plinth.replicas"].choose()
        replica: AsyncEngine | None = info["plinth.replica"]
        return replica.sync_engine if replica is not None else info["plinth.primary"]

    def _may_run_again(self, exc: Exception) -> bool:
        replica: AsyncEngine | None = self.info.get("plinth.replica")
        if replica is None or self.info.get("plinth.on_primary"):
            return super()._may_run_again(exc)  # the primary's connection died
        if translate_outage(exc) is None:
            return False  # not the replica's outage (a bad statement, bad data)
        self.info["plinth.replicas"].mark_down(replica, "connection lost")
        self.info["plinth.replica"] = self.info["plinth.replicas"].choose()
        return True
