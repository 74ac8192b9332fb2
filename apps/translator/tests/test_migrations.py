"""Upgrade, downgrade to base, upgrade again — on every server we can reach."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.project import AppSpec


async def user_tables(connection: AsyncConnection) -> set[str]:
    rows = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    await connection.rollback()
    return set(rows.scalars())


async def test_upgrade_downgrade_upgrade(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    assert await migrations.current(plinth_scratch) == ("0001",)
    assert await user_tables(plinth_scratch) == {
        "alembic_version",
        "users",
        "documents",
        "translations",
    }

    await migrations.downgrade(plinth_scratch, plinth_app.migrations, "base")
    assert await migrations.current(plinth_scratch) == ()
    assert await user_tables(plinth_scratch) == {"alembic_version"}
    functions = await plinth_scratch.execute(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'update_updated_at_column'")
    )
    assert functions.scalar_one() == 0
    await plinth_scratch.rollback()

    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    assert await migrations.current(plinth_scratch) == ("0001",)


async def test_models_match_the_migration(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    assert await migrations.drift(plinth_scratch, plinth_app.metadata) == []


async def test_uuid_ossp_is_enabled_where_the_server_ships_it(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    available, installed = (
        await plinth_scratch.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp'), "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'uuid-ossp')"
            )
        )
    ).one()
    assert installed == available
