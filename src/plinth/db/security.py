"""What the server says about our connection: is it encrypted, is the role too strong.

A URL that asks for SSL is a promise; ``pg_stat_ssl`` is the proof. In
production `Database.start` checks both: an unencrypted connection is refused,
and a role with more power than an app needs (superuser, CREATEROLE,
CREATEDB, BYPASSRLS) is logged as a warning, since migrations may
legitimately run with such a role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ConnectionSecurity", "inspect_connection"]

_QUERY = text(
    "SELECT s.ssl, s.version, r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, "
    "r.rolbypassrls "
    "FROM pg_roles r LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid() "
    "WHERE r.rolname = current_user"
)


@dataclass(frozen=True)
class ConnectionSecurity:
    """The encryption of one connection and the attributes of its role."""

    ssl: bool
    ssl_version: str | None
    role: str
    superuser: bool
    create_role: bool
    create_db: bool
    bypass_rls: bool

    @property
    def excess_privileges(self) -> list[str]:
        """Role attributes an application's runtime role should not have."""
        flags = {
            "SUPERUSER": self.superuser,
            "CREATEROLE": self.create_role,
            "CREATEDB": self.create_db,
            "BYPASSRLS": self.bypass_rls,
        }
        return [name for name, present in flags.items() if present]


async def inspect_connection(connection: AsyncConnection) -> ConnectionSecurity:
    """Ask the server how `connection` is protected and what its role may do."""
    row = (await connection.execute(_QUERY)).one()
    return ConnectionSecurity(
        ssl=bool(row.ssl),
        ssl_version=row.version,
        role=row.rolname,
        superuser=row.rolsuper,
        create_role=row.rolcreaterole,
        create_db=row.rolcreatedb,
        bypass_rls=row.rolbypassrls,
    )
