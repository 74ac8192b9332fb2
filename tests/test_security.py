"""Least privilege, checked against real roles rather than documented."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import create_async_engine

from plinth.db.security import inspect_connection


@pytest.fixture
async def app_role(scratch_url: URL) -> AsyncIterator[str]:
    role = f"plinth_app_{os.getpid()}"
    admin = create_async_engine(scratch_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        await connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        await connection.execute(text("CREATE TABLE notes (id int PRIMARY KEY)"))
        await connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {role}"))
    try:
        yield role
    finally:
        async with admin.connect() as connection:
            await connection.execute(text("DROP TABLE notes"))
            await connection.execute(text(f"DROP ROLE {role}"))
        await admin.dispose()


async def test_the_admin_role_has_excess_privileges(scratch_url: URL) -> None:
    engine = create_async_engine(scratch_url)
    async with engine.connect() as connection:
        security = await inspect_connection(connection)
    await engine.dispose()
    assert "SUPERUSER" in security.excess_privileges


async def test_a_least_privilege_role_has_none_and_cannot_create(
    scratch_url: URL, app_role: str
) -> None:
    engine = create_async_engine(scratch_url.set(username=app_role))
    async with engine.connect() as connection:
        security = await inspect_connection(connection)
        assert (security.role, security.excess_privileges) == (app_role, [])
        await connection.execute(text("INSERT INTO notes VALUES (1)"))
        with pytest.raises(Exception, match="permission denied"):
            await connection.execute(text("CREATE TABLE sneaky (id int)"))
        await connection.rollback()
    await engine.dispose()
