"""The migration on a fresh database: enum types created before the tables, dropped after.

The seed's migration declared its enums with ``create_type=False`` and never
created them, so it failed on a fresh database, and nothing tested its
downgrade. These tests run the real migration on empty databases (the test
server and the local PostgreSQL 15), and show that Plinth's migration kit
fails on the seed's mistakes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.migrations import kit
from plinth.project import AppSpec

TABLES = {"users", "translations", "document_blocks", "glossaries"}
ENUMS = {
    "subscription_tier": ["free", "pro", "enterprise"],
    "translation_status": ["pending", "processing", "completed", "failed"],
}


async def schema(connection: AsyncConnection) -> tuple[set[str], dict[str, list[str]], int]:
    """Tables, enum types with their labels in order, and updated_at functions."""
    tables = await connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )
    enums = await connection.execute(
        text(
            "SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
            "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "LEFT JOIN pg_enum e ON e.enumtypid = t.oid "
            "WHERE n.nspname = 'public' AND t.typtype = 'e' GROUP BY t.typname"
        )
    )
    functions = await connection.execute(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'update_updated_at_column'")
    )
    result = (
        set(tables.scalars()) - {"alembic_version"},
        {name: labels for name, labels in enums},
        functions.scalar_one(),
    )
    await connection.rollback()
    return result


async def test_upgrade_downgrade_upgrade(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    assert await migrations.current(plinth_scratch) == ("0003",)
    assert await schema(plinth_scratch) == (TABLES, ENUMS, 1)

    await migrations.downgrade(plinth_scratch, plinth_app.migrations, "base")
    assert await migrations.current(plinth_scratch) == ()
    # pg_type: the types are gone with the tables, so nothing blocks a second upgrade.
    assert await schema(plinth_scratch) == (set(), {}, 0)

    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    assert await schema(plinth_scratch) == (TABLES, ENUMS, 1)
    assert await migrations.drift(plinth_scratch, plinth_app.metadata) == []


async def test_the_status_column_uses_the_enum_type(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations)
    columns = await plinth_scratch.execute(
        text(
            "SELECT table_name, udt_name, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name IN ('status', 'subscription_tier') "
            "ORDER BY table_name"
        )
    )
    assert columns.all() == [
        ("translations", "translation_status", "'pending'::translation_status"),
        ("users", "subscription_tier", "'free'::subscription_tier"),
    ]


def seeds_mistake(app: AppSpec, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the app's migrations with one line changed as the seed had it."""
    copy = tmp_path / "migrations"
    shutil.copytree(app.migrations, copy, ignore=shutil.ignore_patterns("__pycache__"))
    script = copy / "versions" / "0001_initial_schema.py"
    source = script.read_text()
    assert old in source
    script.write_text(source.replace(old, new))
    return copy


async def test_the_kit_fails_a_migration_that_never_creates_its_enums(
    plinth_each_server: URL, plinth_app: AppSpec, tmp_path: Path
) -> None:
    broken = seeds_mistake(
        plinth_app, tmp_path, "        enum.create(op.get_bind(), checkfirst=False)", "        pass"
    )
    with pytest.raises(kit.KitFailure, match='type "subscription_tier" does not exist'):
        await kit.upgrade_from_empty(plinth_each_server, broken)


async def test_the_kit_fails_a_downgrade_that_leaves_its_enums(
    plinth_each_server: URL, plinth_app: AppSpec, tmp_path: Path
) -> None:
    broken = seeds_mistake(
        plinth_app, tmp_path, "        enum.drop(op.get_bind(), checkfirst=False)", "        pass"
    )
    with pytest.raises(kit.KitFailure, match='type "subscription_tier" already exists'):
        await kit.stairway(plinth_each_server, broken)
    # no_trace fails too: on the upgrade after the downgrade, as the stairway does.
    with pytest.raises(kit.KitFailure, match="subscription_tier"):
        await kit.no_trace(plinth_each_server, broken)


async def row_security(connection: AsyncConnection) -> dict[str, tuple[bool, bool, int]]:
    """Per table: ENABLE and FORCE ROW LEVEL SECURITY, and its number of policies."""
    rows = await connection.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind = 'r' AND c.relname <> 'alembic_version'"
        )
    )
    result = {name: (enabled, forced, policies) for name, enabled, forced, policies in rows}
    await connection.rollback()
    return result


async def test_0002_adds_row_level_security_and_its_downgrade_removes_it(
    plinth_scratch: AsyncConnection, plinth_app: AppSpec
) -> None:
    await migrations.upgrade(plinth_scratch, plinth_app.migrations, "0001")
    assert await row_security(plinth_scratch) == dict.fromkeys(TABLES, (False, False, 0))
    await migrations.upgrade(plinth_scratch, plinth_app.migrations, "0002")
    assert await row_security(plinth_scratch) == dict.fromkeys(TABLES, (True, True, 1))
    policy = await plinth_scratch.execute(
        text("SELECT cmd, qual, with_check FROM pg_policies WHERE tablename = 'users'")
    )
    setting = "NULLIF(current_setting('app.tenant_id'::text, true), ''::text)"
    condition = f"(tenant_id = ({setting})::uuid)"
    assert policy.one() == ("ALL", condition, condition)
    await plinth_scratch.rollback()
    await migrations.downgrade(plinth_scratch, plinth_app.migrations, "-1")
    assert await migrations.current(plinth_scratch) == ("0001",)
    assert await row_security(plinth_scratch) == dict.fromkeys(TABLES, (False, False, 0))
