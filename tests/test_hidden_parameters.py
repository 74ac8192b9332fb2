"""No request data in logs outside development: the engine hides parameters.

A failing statement's parameters are what the client sent. With
``hide_parameters`` SQLAlchemy renders them as ``[SQL parameters hidden due to
hide_parameters=True]`` in its statement log and in exception messages, so a
logged 500 (or a worker's ``logger.exception``) carries the SQL, not the data.
In development they are shown: that is where one debugs, with one's own data.
"""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Database, DatabaseSettings, exception_handlers

SECRET = "tok-3f9a1c-very-private"
SCHEMA = [
    "create table notes (id serial primary key, body text not null unique)",
    """create function refuse_boom() returns trigger language plpgsql as $$
       begin
         if new.body like 'boom%' then raise exception 'refused by trigger'; end if;
         return new;
       end $$""",
    "create trigger refuse_boom before insert on notes for each row execute function refuse_boom()",
]


class Note(BaseModel):
    body: str


def _app(database: Database) -> FastAPI:
    app = FastAPI(exception_handlers=exception_handlers)

    @app.post("/notes", status_code=201)
    async def create(note: Note, session: AsyncSession = database.depends) -> dict[str, int]:
        found = await session.execute(
            text("insert into notes (body) values (:body) returning id"), {"body": note.body}
        )
        return {"id": found.scalar_one()}

    return app


@pytest.fixture
async def notes_url(scratch_url: URL) -> URL:
    async with (
        Database(DatabaseSettings.load(database_url=scratch_url)) as database,
        database.transaction() as session,
    ):
        for statement in SCHEMA:
            await session.execute(text(statement))
    return scratch_url


async def _post_failing(url: URL, app_env: str, body: str) -> tuple[str, str]:
    """POST a body the database refuses; return the exception's text as a log
    handler would format it, and the response of a duplicate."""
    settings = DatabaseSettings.load(database_url=url, app_env=app_env)
    async with Database(settings) as database:
        app = _app(database)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with pytest.raises(DBAPIError) as caught:  # a 500: the server logs it
                await client.post("/notes", json={"body": f"boom {body}"})
            assert (await client.post("/notes", json={"body": body})).status_code == 201
            duplicate = await client.post("/notes", json={"body": body})
            assert duplicate.status_code == 409
    return "".join(traceback.format_exception(caught.value)), duplicate.text


@pytest.mark.parametrize("app_env", ["test", "production"])
async def test_a_failed_request_leaves_no_data_in_logs(
    notes_url: URL, app_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements and parameters
    if app_env == "production":
        # Production needs an SSL URL; hide_parameters is decided by APP_ENV alone.
        from plinth.db.engine import engine_arguments

        settings = DatabaseSettings.load(
            database_url=notes_url.set(query={"sslmode": "require"}), app_env="production"
        )
        assert engine_arguments(settings, notes_url)[1]["hide_parameters"] is True
        return
    logged, duplicate = await _post_failing(notes_url, app_env, SECRET)
    assert "refused by trigger" in logged
    assert "insert into notes" in logged  # the statement is still there to debug
    assert "[SQL parameters hidden due to hide_parameters=True]" in logged
    assert SECRET not in logged
    assert "insert into notes" in caplog.text  # SQL logging was on
    assert SECRET not in caplog.text
    assert SECRET not in duplicate  # 409 names the constraint, not the value


async def test_development_shows_parameters(
    notes_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    logged, _ = await _post_failing(notes_url, "development", SECRET)
    assert SECRET in logged  # "[parameters: ('boom tok-...',)]": one's own data, to debug
