"""Several replicas migrating at once apply each revision exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import create_async_engine

from plinth import migrations
from plinth.migrations import MIGRATION_LOCK_KEY

TRANSLATOR = Path(__file__).parents[1] / "apps" / "translator"
REPLICAS = 4


async def test_concurrent_upgrades_wait_for_the_lock_and_apply_once(scratch_url: URL) -> None:
    engine = create_async_engine(scratch_url)
    environment = {
        **os.environ,
        "DATABASE_URL": scratch_url.render_as_string(hide_password=False),
    }
    async with engine.connect() as holder:
        # Hold the lock so that every replica is provably waiting when the race starts.
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        await holder.commit()
        replicas = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "plinth",
                "db",
                "upgrade",
                "--app",
                str(TRANSLATOR),
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(REPLICAS)
        ]
        waiting = 0
        for _ in range(300):
            waiting = (
                await holder.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' "
                        "AND datname = current_database()"
                    )
                )
            ).scalar_one()
            await holder.commit()
            if waiting == REPLICAS:
                break
            await asyncio.sleep(0.05)
        assert waiting == REPLICAS
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        await holder.commit()
        results = [await replica.communicate() for replica in replicas]
    for replica, (_, stderr) in zip(replicas, results, strict=True):
        assert replica.returncode == 0, stderr.decode()
    async with engine.connect() as connection:
        assert await migrations.current(connection) == ("0001",)
    await engine.dispose()
