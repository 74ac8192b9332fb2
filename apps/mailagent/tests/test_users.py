"""The users table: defaults, uniqueness, timestamps, encrypted tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailagent.models import User
from plinth import Conflict, Keyring
from plinth.driver_errors import translate_dbapi_error

TOKEN = "ya29.a0AfH6SMBx-access-token"
REFRESH = "1//0g-refresh-token"


async def add(session: AsyncSession, **fields: object) -> User:
    user = User(**fields)
    session.add(user)
    await session.flush()
    return user


async def test_user_is_created_with_the_seed_defaults(db_session: AsyncSession) -> None:
    user = await add(db_session, email="ada@example.com")
    assert isinstance(user.id, int)
    assert user.is_active is True
    assert user.onboarding_completed is False
    assert user.gmail_oauth_token is None
    assert user.telegram_id is None


async def test_ids_are_integers_from_an_identity(db_session: AsyncSession) -> None:
    first = await add(db_session, email="a@example.com")
    second = await add(db_session, email="b@example.com")
    assert second.id > first.id
    identity = await db_session.execute(
        text(
            "SELECT data_type, is_identity, identity_generation FROM information_schema.columns "
            "WHERE table_name = 'users' AND column_name = 'id'"
        )
    )
    assert identity.one() == ("integer", "YES", "BY DEFAULT")


async def test_timestamps_are_filled_in_by_the_server(db_session: AsyncSession) -> None:
    user = await add(db_session, email="ada@example.com")
    now = (await db_session.execute(text("SELECT now()"))).scalar_one()
    assert user.created_at == user.updated_at == now
    assert user.created_at.tzinfo is not None


async def test_updated_at_moves_on_update(db_session: AsyncSession) -> None:
    # The test runs in one transaction, where now() stands still: start from an hour ago.
    hour_ago = datetime.now().astimezone() - timedelta(hours=1)
    user = await add(db_session, email="ada@example.com", created_at=hour_ago, updated_at=hour_ago)
    user.onboarding_completed = True
    await db_session.flush()
    now = (await db_session.execute(text("SELECT now()"))).scalar_one()
    assert user.updated_at == now > hour_ago
    assert user.created_at == hour_ago


async def test_updated_at_moves_on_a_raw_update_too(db_session: AsyncSession) -> None:
    hour_ago = datetime.now().astimezone() - timedelta(hours=1)
    user = await add(db_session, email="ada@example.com", updated_at=hour_ago)
    await db_session.execute(
        text("UPDATE users SET telegram_username = 'ada' WHERE id = :id"), {"id": user.id}
    )
    moved = await db_session.execute(
        text("SELECT updated_at = now() FROM users WHERE id = :id"), {"id": user.id}
    )
    assert moved.scalar_one() is True


@pytest.mark.parametrize(
    ("first", "second", "constraint"),
    [
        ({"email": "ada@example.com"}, {"email": "ada@example.com"}, "uq_users_email"),
        (
            {"email": "ada@example.com", "telegram_id": "42"},
            {"email": "bob@example.com", "telegram_id": "42"},
            "uq_users_telegram_id",
        ),
    ],
)
async def test_duplicates_are_rejected(
    db_session: AsyncSession,
    first: dict[str, str],
    second: dict[str, str],
    constraint: str,
) -> None:
    await add(db_session, **first)
    with pytest.raises(IntegrityError) as caught:
        await add(db_session, **second)
    error = translate_dbapi_error(caught.value)
    assert isinstance(error, Conflict)
    assert error.constraint == constraint


async def test_many_users_may_have_no_telegram_id(db_session: AsyncSession) -> None:
    await add(db_session, email="ada@example.com")
    await add(db_session, email="bob@example.com", telegram_id=None)
    count = await db_session.execute(text("SELECT count(*) FROM users WHERE telegram_id IS NULL"))
    assert count.scalar_one() == 2


async def test_tokens_round_trip_and_are_ciphertext_in_the_table(
    db_session: AsyncSession, encryption_keys: str
) -> None:
    user = await add(
        db_session, email="ada@example.com", gmail_oauth_token=TOKEN, gmail_refresh_token=REFRESH
    )
    raw = await db_session.execute(
        text("SELECT gmail_oauth_token, gmail_refresh_token FROM users WHERE id = :id"),
        {"id": user.id},
    )
    stored_token, stored_refresh = raw.one()
    for stored, plaintext in ((stored_token, TOKEN), (stored_refresh, REFRESH)):
        assert plaintext not in stored
        assert stored.startswith("gAAAAA")  # a Fernet token
        assert Keyring([encryption_keys]).decrypt(stored) == plaintext

    db_session.expunge_all()
    loaded = (await db_session.execute(select(User).where(User.id == user.id))).scalar_one()
    assert (loaded.gmail_oauth_token, loaded.gmail_refresh_token) == (TOKEN, REFRESH)
    assert loaded.has_gmail_token


async def test_token_search_by_value_finds_nothing(db_session: AsyncSession) -> None:
    # What the database holds is not the token: even an exact match cannot find it.
    await add(db_session, email="ada@example.com", gmail_oauth_token=TOKEN)
    found = await db_session.execute(
        text("SELECT count(*) FROM users WHERE gmail_oauth_token = :t"), {"t": TOKEN}
    )
    assert found.scalar_one() == 0
