"""Text columns encrypted at rest with Fernet (the ``crypto`` extra).

``EncryptedText`` encrypts in Python before the value is bound and decrypts
after it is fetched, so PostgreSQL, its logs, replicas and backups only ever
hold Fernet tokens (authenticated AES-128-CBC + HMAC-SHA256, base64 text)::

    class User(Base):
        gmail_oauth_token: Mapped[str | None] = mapped_column(EncryptedText())

Keys come from ``PLINTH_ENCRYPTION_KEYS`` (the environment or ``.env``),
comma-separated, **newest first**: the first key encrypts, every key decrypts.
They are read on first use, so importing models and running migrations needs
no key; call `Keyring.from_env` at start-up to fail fast. With the variable
unset and ``APP_ENV`` development or test, a development key made once into
the project's embedded home (``development-keys.json``, mode 0600, see
`plinth.embedded.keys`) is used, and announced on stderr; production refuses
to start without the variable. Generate a key with
``python -c "from plinth.encryption import generate_key; print(generate_key())"``.

Rotation (`cryptography`'s ``MultiFernet.rotate``):

1. put the new key first: ``PLINTH_ENCRYPTION_KEYS=new,old`` and deploy —
   new writes use ``new``, old rows still decrypt with ``old``;
2. re-encrypt the stored tokens: ``await rotate(session, User.gmail_oauth_token)``
   for each encrypted column, then commit;
3. drop ``old`` from the variable and deploy again.

A missing or malformed key, and a token that no key decrypts (wrong key,
altered data), raise `EncryptionKeyError` naming the variable; no message
ever contains a key, a token or a plaintext. Encrypted columns can be
compared for NULL only: equal plaintexts have different tokens, so they can
be neither indexed nor searched.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import Field, SecretStr
from sqlalchemy import Table, Text, bindparam, select, type_coerce, update
from sqlalchemy.types import TypeDecorator

from plinth.errors import EncryptionKeyError
from plinth.settings import AppEnv, PlinthSettings

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext
    from sqlalchemy import Column
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import InstrumentedAttribute

__all__ = [
    "ENV_VAR",
    "EncryptedText",
    "EncryptionSettings",
    "Keyring",
    "generate_key",
    "render_item",
    "rotate",
]

ENV_VAR = "PLINTH_ENCRYPTION_KEYS"
_GENERATE = 'python -c "from plinth.encryption import generate_key; print(generate_key())"'


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


class EncryptionSettings(PlinthSettings):
    """Where the keys come from: the environment, then ``.env``."""

    encryption_keys: SecretStr | None = Field(default=None, validation_alias=ENV_VAR)
    """``PLINTH_ENCRYPTION_KEYS``: Fernet keys, comma-separated, newest first."""

    app_env: AppEnv = Field(default="development", validation_alias="APP_ENV")
    """``APP_ENV``: only development and test fall back to development keys."""


# The development key files already announced by this process.
_announced: set[Path] = set()


class Keyring:
    """Fernet keys, newest first: encrypts with the first, decrypts with any."""

    def __init__(self, keys: Iterable[str | bytes], *, source: str = "the keys given") -> None:
        self.source = source
        """Where the keys came from, as error messages name it."""
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError):
                # The key itself must not reach the message, nor its traceback.
                raise EncryptionKeyError(
                    f"{source}: key #{position} is not a Fernet key (32 url-safe base64 "
                    f"bytes); generate one with: {_GENERATE}"
                ) from None
        if not fernets:
            raise EncryptionKeyError(f"{source} holds no key; generate one with: {_GENERATE}")
        self._fernet = MultiFernet(fernets)
        self.size = len(fernets)
        """How many keys the ring holds."""

    def __repr__(self) -> str:
        return f"<Keyring {self.size} key{'s' if self.size > 1 else ''} from {self.source}>"

    @classmethod
    def from_env(cls, project_dir: Path | None = None) -> Keyring:
        """The keys in ``PLINTH_ENCRYPTION_KEYS``; `EncryptionKeyError` if bad.

        Unset with ``APP_ENV`` development or test: the development keys of
        `project_dir`'s project (default: the current directory's). Unset in
        production: `EncryptionKeyError`.
        """
        settings = EncryptionSettings()
        secret = settings.encryption_keys
        text = secret.get_secret_value() if secret is not None else ""
        keys = [key for key in text.split(",") if key.strip()]
        if keys:
            return cls(keys, source=ENV_VAR)
        if settings.app_env in ("development", "test"):
            return cls._development(settings.app_env, project_dir)
        raise EncryptionKeyError(
            f"{ENV_VAR} is not set: it must hold one or more Fernet keys, comma-separated, "
            f"newest first (required when APP_ENV={settings.app_env}); generate one with: "
            f"{_GENERATE}"
        )

    @classmethod
    def _development(cls, app_env: str, project_dir: Path | None) -> Keyring:
        from plinth.embedded.keys import development_keys

        text, path, created = development_keys(project_dir)
        if path not in _announced:
            _announced.add(path)
            verb = "Generated" if created else "Using"
            print(
                f"{verb} development encryption keys in {path} ({ENV_VAR} unset, "
                f"APP_ENV={app_env}; production requires {ENV_VAR})",
                file=sys.stderr,
            )
        return cls(text.split(","), source=f"the development keys in {path}")

    def encrypt(self, plaintext: str) -> str:
        """A Fernet token for `plaintext`, made with the newest key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of `token`; `EncryptionKeyError` if no key opens it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(
                f"a stored value cannot be decrypted with any key in {self.source}: it was "
                "encrypted with a key that is no longer listed (keep old keys after the new "
                "one until `rotate` has run), or it was altered or never encrypted"
            ) from None

    def rotate(self, token: str) -> str:
        """`token` re-encrypted with the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(
                f"a stored value cannot be rotated: no key in {self.source} decrypts it"
            ) from None


class EncryptedText(TypeDecorator[str]):
    """TEXT holding a Fernet token; Python sees the plaintext ``str``.

    `keys` (a `Keyring` or a list of keys, newest first) overrides
    ``PLINTH_ENCRYPTION_KEYS``. NULL stays NULL, so a nullable column still
    tells "no token" from "empty token".
    """

    impl = Text
    cache_ok = True

    def __init__(self, keys: Keyring | Sequence[str | bytes] | None = None) -> None:
        super().__init__()
        # A tuple, because the type's cache key is built from this attribute.
        self.keys = keys if keys is None or isinstance(keys, Keyring) else tuple(keys)
        self._keyring: Keyring | None = None

    @property
    def keyring(self) -> Keyring:
        """The keys in use, loaded on first use (`EncryptionKeyError` if missing)."""
        if self._keyring is None:
            if isinstance(self.keys, Keyring):
                self._keyring = self.keys
            elif self.keys is not None:
                self._keyring = Keyring(self.keys)
            else:
                self._keyring = Keyring.from_env()
        return self._keyring

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"EncryptedText takes str, not {type(value).__name__}")
        return self.keyring.encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.keyring.decrypt(value)

    def __repr__(self) -> str:
        # Never the keys: reprs end up in logs and in autogenerated migrations.
        return "EncryptedText()"


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic hook: autogenerate writes an `EncryptedText` column as ``sa.Text()``.

    The database holds TEXT, and a migration must run without keys. Use it in
    ``env.py``: ``run_env(Base.metadata, render_item=render_item)``.
    """
    if kind == "type" and isinstance(obj, EncryptedText):
        return f"{autogen_context.opts.get('sqlalchemy_module_prefix') or 'sa.'}Text()"
    return False


async def rotate(
    executor: AsyncSession | AsyncConnection, column: InstrumentedAttribute[Any] | Column[Any]
) -> int:
    """Re-encrypt every value of an `EncryptedText` column with the newest key.

    Reads and rewrites the stored tokens (the plaintexts stay inside the
    keyring) in one executemany UPDATE; the caller commits. Loads the column's
    tokens into memory at once: for millions of rows, run it per key range.
    Returns the number of rows rewritten.
    """
    table = getattr(column.expression, "table", None)
    if not isinstance(table, Table):
        raise TypeError(f"{column!r} is not a table column")
    target = table.c[column.expression.name]
    if not isinstance(target.type, EncryptedText):
        raise TypeError(f"{table.name}.{target.name} is not an EncryptedText column")
    keyring = target.type.keyring
    key = list(table.primary_key.columns)
    stored = type_coerce(target, Text)
    rows = (await executor.execute(select(*key, stored).where(target.is_not(None)))).all()
    if not rows:
        return 0
    # Bind names that cannot collide with the table's own column names.
    statement = (
        update(table)
        .where(*(pk == bindparam(f"plinth_pk_{i}") for i, pk in enumerate(key)))
        .values({target.name: bindparam("plinth_token", type_=Text)})
    )
    parameters = [
        {
            **{f"plinth_pk_{i}": row[i] for i in range(len(key))},
            "plinth_token": keyring.rotate(row[-1]),
        }
        for row in rows
    ]
    await executor.execute(statement, parameters)
    return len(rows)
