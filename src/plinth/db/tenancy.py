"""Tenant-scoped units of work: the tenant reaches PostgreSQL's row-level security.

`bind_tenant` makes a session run ``SELECT set_config(setting, tenant, true)``
as the first statement of each transaction it begins (SQLAlchemy's
``after_begin`` session event, so a unit of work that never queries costs
nothing). The setting is transaction-local: it ends with the ``COMMIT`` or
``ROLLBACK``, and a pooled connection never carries one request's tenant into
the next. The policies of `plinth.ddl.tenant_isolation` read it.

Lean reads (`plinth.db.lean_reads`) run a plain read before the first write in
autocommit, outside any transaction, where a transaction-local setting does not
exist: that read would see no rows at all. ``set_config`` is not a plain read,
so it makes the driver send ``BEGIN`` first, and every later read of the unit of
work runs inside that transaction, with the tenant. A tenant-scoped unit of
work therefore costs ``BEGIN``, ``set_config`` and ``COMMIT`` around its
statements: a single read takes 4 round trips where a lean read takes 1, and a
write 1 more than without a tenant (``tests/test_tenancy.py`` counts them on
the wire). On psycopg ``BEGIN`` travels with ``set_config``
(`plinth.db.pipelined_begin`): one round trip less each. The tenant is sent
as a bind parameter, never spliced into SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text

from plinth.ddl import TENANT_SETTING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["TENANT_SETTING", "bind_tenant", "bound_tenant", "tenant_value"]

_KEY = "plinth.tenant"
_SET = text("SELECT set_config(:setting, :tenant, true)")


def tenant_value(tenant: object) -> str:
    """`tenant` as the setting's text; refuses what could never name a tenant."""
    if tenant is None or isinstance(tenant, bool):
        raise ValueError(f"{tenant!r} is not a tenant")
    value = str(tenant)
    if not value.strip() or "\x00" in value:
        raise ValueError("a tenant must be a non-empty value without NUL")
    return value


def bind_tenant(session: AsyncSession, tenant: object, setting: str = TENANT_SETTING) -> None:
    """Set `setting` to `tenant` at the start of every transaction `session` begins.

    Call it on a new session, before its first statement; binding it again
    changes the tenant for the transactions it begins next.
    """
    value = tenant_value(tenant)
    sync = session.sync_session
    if sync.in_transaction() and _KEY not in sync.info:
        raise ValueError("bind the tenant before the session's first statement")
    sync.info[_KEY] = (setting, value)
    if not event.contains(sync, "after_begin", _apply_tenant):
        event.listen(sync, "after_begin", _apply_tenant)


def bound_tenant(session: AsyncSession) -> str | None:
    """The tenant `bind_tenant` gave `session`, or None."""
    bound: tuple[str, str] | None = session.sync_session.info.get(_KEY)
    return None if bound is None else bound[1]


def _apply_tenant(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    bound: Any = session.info.get(_KEY)
    if bound is not None:
        setting, value = bound
        connection.execute(_SET, {"setting": setting, "tenant": value})
