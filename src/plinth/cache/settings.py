"""How to reach Redis and how to pool connections: ``REDIS_URL``, ``CACHE_*``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from plinth.settings import AppEnv, PlinthSettings, redact_url

__all__ = ["CacheSettings"]

_SCHEMES = ("redis", "rediss", "unix")


class CacheSettings(PlinthSettings):
    """How to reach Redis and how to pool connections.

    ``REDIS_URL`` as the seeds name it; the other fields use the ``CACHE_``
    prefix, e.g. ``CACHE_MAX_CONNECTIONS=20``. The `repr` masks the password.
    """

    model_config = SettingsConfigDict(env_prefix="CACHE_")

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    """``REDIS_URL``: ``redis://[:password@]host:6379/db``, ``rediss://`` for TLS.
    Unset outside production: an embedded Valkey (`plinth.embedded.valkey`)."""

    app_env: AppEnv = Field(default="development", validation_alias="APP_ENV")
    """``APP_ENV``: production requires ``REDIS_URL``."""

    key_prefix: str | None = None
    """Prefix of every key; overrides the prefix the app's code gives `Cache`."""

    max_connections: int = Field(default=10, ge=1)
    """Connections in the pool; a request waits for a free one beyond that."""

    pool_timeout: float = Field(default=2.0, gt=0)
    """Seconds to wait for a free connection before failing."""

    socket_timeout: float = Field(default=2.0, gt=0)
    """Seconds allowed for one command: a late cache answer is worse than a miss."""

    socket_connect_timeout: float = Field(default=2.0, gt=0)
    """Seconds allowed for one connection attempt."""

    default_ttl: float | None = Field(default=3600.0, gt=0)
    """Seconds a value lives when `set` is given no ``ttl``; unset: forever."""

    connect_retries: int = Field(default=3, ge=0)
    """Retries at start-up when Redis cannot be reached."""

    retry_delay: float = Field(default=0.5, ge=0)
    """First retry delay in seconds at start-up; it doubles each time."""

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # The message never repeats the value: it may hold a password.
        scheme = urlsplit(value.strip()).scheme
        if scheme not in _SCHEMES:
            choices = ", ".join(f"{s}://" for s in _SCHEMES)
            raise ValueError(f"must start with one of {choices}")
        return value.strip()

    @model_validator(mode="after")
    def _required_in_production(self) -> CacheSettings:
        if self.redis_url is None and self.app_env == "production":
            raise ValueError("REDIS_URL is required when APP_ENV=production")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "redis_url" and value else value

    def redacted_url(self) -> str:
        """The URL for messages and logs."""
        return redact_url(self.redis_url) if self.redis_url else "the embedded Valkey"
