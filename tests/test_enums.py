"""PostgreSQL enums: created before their tables, dropped after, grown with ADD VALUE."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from typer.testing import CliRunner

from plinth import migrations
from plinth.cli import cli
from plinth.migrations import schema_diff as drift
from plinth.project import find_app

KIT_ENUM = Path(__file__).parent / "fixtures" / "migration_apps" / "kit_enum"


@pytest.fixture
async def connection(scratch_url: URL) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def test_autogenerate_creates_the_type_before_its_table(connection: AsyncConnection) -> None:
    app = find_app(KIT_ENUM)
    code, _ = await drift.autogenerate(connection, app.metadata)
    create_type = code.index(
        "sa.Enum('draft', 'published', 'archived', name='card_status').create(op.get_bind())"
    )
    assert create_type < code.index("op.create_table('cards'")
    # The column refers to the type without creating it a second time.
    assert "name='card_status', create_type=False)" in code


async def test_autogenerate_notices_a_new_value(connection: AsyncConnection) -> None:
    app = find_app(KIT_ENUM)
    await migrations.upgrade(connection, app.migrations, "0001")
    code, _ = await drift.autogenerate(connection, app.metadata)
    assert "op.add_enum_value(" in code
    assert "new_value='archived'" in code


def test_a_generated_enum_revision_upgrades_downgrades_and_matches(
    tmp_path: Path, scratch_url: URL
) -> None:
    app = tmp_path / "kit_enum"
    shutil.copytree(KIT_ENUM, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "migrations" / "versions" / "0002_archived_status.py").unlink()
    runner = CliRunner()
    env = {"DATABASE_URL": scratch_url.render_as_string(False)}

    def plinth(*args: str) -> str:
        result = runner.invoke(cli, [*args, "--app", str(app)], env=env)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    plinth("db", "revision", "-m", "archived cards")
    (generated,) = (app / "migrations" / "versions").glob("*_archived_cards.py")
    source = generated.read_text()
    assert "op.add_enum_value(" in source
    assert "op.sync_enum_values(" in source  # the downgrade
    plinth("db", "upgrade")
    plinth("db", "check")
    plinth("db", "downgrade", "0001")
    assert plinth("db", "current").strip() == "0001"
