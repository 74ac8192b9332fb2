"""EncryptedText on a real database: ciphertext at rest, clear errors, key rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Column, Integer, MetaData, Table, Text, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

import plinth
from plinth import EncryptedText, EncryptionKeyError, Keyring
from plinth.encryption import ENV_VAR, generate_key, rotate

OLD, NEW, OTHER = generate_key(), generate_key(), generate_key()
PLAINTEXT = "ya29.a0AfH6SMC-gmail-oauth-token"


def secrets_table(keys: Keyring | list[str] | None) -> Table:
    return Table(
        "secrets",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("token", EncryptedText(keys)),
    )


@pytest.fixture(params=["postgresql+asyncpg", "postgresql+psycopg"])
async def connection(
    request: pytest.FixtureRequest, scratch_url: URL
) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(scratch_url.set(drivername=request.param))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TABLE secrets (id int PRIMARY KEY, token text)"))
            yield connection
    finally:
        await engine.dispose()


async def stored(connection: AsyncConnection, id: int) -> str | None:
    raw = await connection.execute(text("SELECT token FROM secrets WHERE id = :id"), {"id": id})
    value: str | None = raw.scalar_one()
    return value


async def test_the_database_holds_a_token_and_python_the_plaintext(
    connection: AsyncConnection,
) -> None:
    secrets = secrets_table([NEW])
    await connection.execute(
        insert(secrets), [{"id": 1, "token": PLAINTEXT}, {"id": 2, "token": None}]
    )
    token = await stored(connection, 1)
    assert token is not None
    assert PLAINTEXT not in token
    assert token.startswith("gAAAAA")  # a Fernet token: version byte 0x80, base64
    assert Keyring([NEW]).decrypt(token) == PLAINTEXT
    assert await stored(connection, 2) is None
    rows = await connection.execute(select(secrets.c.id, secrets.c.token).order_by(secrets.c.id))
    assert rows.all() == [(1, PLAINTEXT), (2, None)]


async def test_equal_plaintexts_get_different_tokens(connection: AsyncConnection) -> None:
    secrets = secrets_table([NEW])
    await connection.execute(insert(secrets), [{"id": 1, "token": "x"}, {"id": 2, "token": "x"}])
    assert await stored(connection, 1) != await stored(connection, 2)


async def test_unicode_and_empty_strings_round_trip(connection: AsyncConnection) -> None:
    secrets = secrets_table([NEW])
    values = {1: "", 2: "токен ✉ 🔑"}
    await connection.execute(insert(secrets), [{"id": k, "token": v} for k, v in values.items()])
    rows = await connection.execute(select(secrets.c.id, secrets.c.token))
    assert {id: token for id, token in rows} == values


async def test_a_wrong_key_is_an_error_never_garbage(connection: AsyncConnection) -> None:
    await connection.execute(insert(secrets_table([OLD])), {"id": 1, "token": PLAINTEXT})
    wrong = secrets_table([OTHER])
    with pytest.raises(EncryptionKeyError, match="cannot be decrypted with any key") as caught:
        (await connection.execute(select(wrong.c.token))).all()
    assert OTHER not in str(caught.value)
    assert caught.value.__cause__ is None  # no InvalidToken traceback to dig secrets out of


async def test_plaintext_left_in_the_column_is_an_error(connection: AsyncConnection) -> None:
    await connection.execute(text("INSERT INTO secrets VALUES (1, 'not encrypted')"))
    with pytest.raises(EncryptionKeyError, match="never encrypted"):
        (await connection.execute(select(secrets_table([NEW]).c.token))).all()


async def test_missing_key_fails_before_anything_is_written(
    connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("APP_ENV", "production")  # elsewhere: development keys
    monkeypatch.chdir(tmp_path)  # no .env here either
    with pytest.raises(EncryptionKeyError, match=f"{ENV_VAR} is not set") as caught:
        await connection.execute(insert(secrets_table(None)), {"id": 1, "token": PLAINTEXT})
    # Raised as itself, not wrapped in a StatementError that would print the parameters.
    assert type(caught.value) is EncryptionKeyError
    assert PLAINTEXT not in str(caught.value)
    assert (await connection.execute(text("SELECT count(*) FROM secrets"))).scalar_one() == 0


async def test_rotation_moves_every_token_to_the_newest_key(connection: AsyncConnection) -> None:
    await connection.execute(
        insert(secrets_table([OLD])),
        [{"id": 1, "token": "first"}, {"id": 2, "token": "second"}, {"id": 3, "token": None}],
    )
    before = await stored(connection, 1)

    # Step 1: the new key first; old tokens still read, new writes use the new key.
    both = secrets_table([NEW, OLD])
    assert (await connection.execute(select(both.c.token).where(both.c.id == 1))).scalar() == (
        "first"
    )
    # Step 2: rewrite the stored tokens.
    assert await rotate(connection, both.c.token) == 2
    assert await stored(connection, 1) != before
    assert await stored(connection, 3) is None
    # Step 3: the old key can go.
    new_only = secrets_table([NEW])
    rows = await connection.execute(select(new_only.c.id, new_only.c.token).order_by("id"))
    assert rows.all() == [(1, "first"), (2, "second"), (3, None)]


async def test_rotate_refuses_a_plain_column(connection: AsyncConnection) -> None:
    plain = Table(
        "secrets", MetaData(), Column("id", Integer, primary_key=True), Column("token", Text)
    )
    with pytest.raises(TypeError, match="not an EncryptedText column"):
        await rotate(connection, plain.c.token)


def test_keys_come_from_the_environment_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, f" {NEW} , {OLD} ")
    keyring = Keyring.from_env()
    assert keyring.size == 2
    assert Keyring([NEW]).decrypt(keyring.encrypt("x")) == "x"  # encrypts with the first
    assert keyring.decrypt(Keyring([OLD]).encrypt("y")) == "y"  # decrypts with any


def test_keys_come_from_dotenv_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"{ENV_VAR}={NEW}\n")
    assert Keyring.from_env().decrypt(Keyring([NEW]).encrypt("z")) == "z"


@pytest.mark.parametrize("value", ["", " , ", None])
def test_missing_keys_name_the_variable(
    value: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_ENV", "production")  # elsewhere: development keys
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(EncryptionKeyError, match=f"^{ENV_VAR} is not set.*generate one with"):
        Keyring.from_env()


def test_a_malformed_key_is_named_by_position_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "not-a-fernet-key-but-a-secret-anyway"
    monkeypatch.setenv(ENV_VAR, f"{NEW},{bad}")
    with pytest.raises(
        EncryptionKeyError, match=f"^{ENV_VAR}: key #2 is not a Fernet key"
    ) as caught:
        Keyring.from_env()
    assert bad not in str(caught.value)
    assert NEW not in str(caught.value)
    assert isinstance(caught.value, plinth.ConfigurationError)


def test_reprs_never_show_keys() -> None:
    keyring = Keyring([NEW, OLD])
    assert repr(keyring) == "<Keyring 2 keys from the keys given>"
    column_type = EncryptedText([NEW])
    assert repr(column_type) == "EncryptedText()"
    assert NEW not in repr(secrets_table([NEW]).c.token)


def test_only_strings_are_encrypted() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    with pytest.raises(TypeError, match="takes str, not bytes"):
        EncryptedText([NEW]).process_bind_param(b"raw", dialect)  # type: ignore[arg-type]
