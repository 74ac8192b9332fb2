"""A unit of work's first read survives its connection dying: it runs once more.

A pooled connection can die between two requests without the pool knowing
(the server restarted or failed over, a backend was terminated, a proxy
dropped an idle connection), or while the first statement runs. A unit of
work that has only read so far can safely start again on a fresh connection:
it has written nothing, loaded nothing into the session, and the caller has
seen no result. `FailoverSession` does that, once.

What counts as the first read: the session's first statement, a plain
``SELECT`` (no ``FOR UPDATE``), with nothing pending in the session. A write,
or anything after the first statement, is never retried: its error reaches
the client as a 503 (`plinth.driver_errors.translate_outage`), and the client
decides. An INSERT whose connection died may or may not have been applied;
running it again blindly could apply it twice.

`plinth.db.replicas.RoutingSession` extends the rule to a replica that refuses
the first read (it is marked down and the read runs on another server).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

__all__ = ["FailoverSession", "may_write"]

logger = logging.getLogger("plinth")

_RAN = "plinth.ran"


def may_write(clause: Any) -> bool:
    """Whether a statement may write: anything but a plain SELECT may (textual
    SQL, ``SELECT ... FOR UPDATE``, and a bare ``session.connection()``, which
    COPY and hand-written SQL ask for)."""
    if isinstance(clause, Select):
        return clause._for_update_arg is not None
    return True


class FailoverSession(Session):
    """A `Session` whose first read runs once more, on a fresh connection,
    when its connection is lost (see the module docstring)."""

    def connection(self, *args: Any, **kw: Any) -> Any:
        # A bare connection may write anything (COPY, hand-written SQL).
        self.info[_RAN] = True
        return super().connection(*args, **kw)

    # `execute`, `scalar`, `scalars` and `get` all end here (SQLAlchemy < 2.2).
    def _execute_internal(self, statement: Any, *args: Any, **kw: Any) -> Any:
        first_read = (
            not self.info.get(_RAN)
            and not may_write(statement)
            and not (self.identity_map or self.new or self.dirty or self.deleted)
        )
        self.info[_RAN] = True
        try:
            return super()._execute_internal(statement, *args, **kw)
        except Exception as exc:
            if not first_read or not self._may_run_again(exc):
                raise
            # Nothing was loaded or written: the rollback only releases the dead
            # connection (the pool discards it), and the read starts afresh.
            self.rollback()
            logger.info("a unit of work's first read lost its connection; reading again")
            return super()._execute_internal(statement, *args, **kw)

    def _may_run_again(self, exc: Exception) -> bool:
        """Whether the first read may run again after `exc`: its connection died."""
        return isinstance(exc, DBAPIError) and exc.connection_invalidated
