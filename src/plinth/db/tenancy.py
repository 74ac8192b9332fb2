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

Citus: the policies reach the shards, but a router query runs on a worker, in
a transaction of its own that ``set_config`` never reaches (Citus propagates
only ``SET LOCAL`` statements, and only under ``citus.propagate_set_commands =
'local'``): every row would be hidden there and every write refused. So the
first tenant-bound ``set_config`` on a connection also asks whether the
database has the ``citus`` extension (the answer is kept for the connection's
life), and on Citus each transaction then runs one statement more, a constant
``DO`` block that turns on that propagation for the transaction and repeats
the setting, read server-side, as ``SET LOCAL``: the tenant is still only a
bind parameter. Plain PostgreSQL runs exactly what it ran before.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import TextClause, event, text

from plinth.ddl import TENANT_SETTING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["TENANT_SETTING", "bind_tenant", "bound_tenant", "tenant_value"]

_KEY = "plinth.tenant"
_CITUS = "plinth.citus"
"""Key in a pooled connection's ``info``: whether its database has Citus."""
_SET = text("SELECT set_config(:setting, :tenant, true)")
_SET_AND_ASK = text(
    "SELECT set_config(:setting, :tenant, true), "
    "EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')"
)
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")


def _propagate_to_workers(setting: str) -> TextClause:
    # `setting` is a validated name (a constant of the app), never request data;
    # the value is read on the server and quoted there (%L).
    return text(
        "DO $plinth$ BEGIN "
        "PERFORM set_config('citus.propagate_set_commands', 'local', true); "
        f"EXECUTE format('SET LOCAL {setting} = %L', current_setting('{setting}')); "
        "END $plinth$"
    )


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
    if not _SETTING_NAME.match(setting):
        raise ValueError(f"tenant setting {setting!r} is not a custom setting name like app.tenant")
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
    if bound is None:
        return
    setting, value = bound
    parameters = {"setting": setting, "tenant": value}
    citus: bool | None = connection.info.get(_CITUS)
    if citus is None:
        citus = bool(connection.execute(_SET_AND_ASK, parameters).one()[1])
        connection.info[_CITUS] = citus
    else:
        connection.execute(_SET, parameters)
    if citus:
        connection.execute(_propagate_to_workers(setting))
