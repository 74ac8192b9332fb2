"""`Cache`: one ``redis.asyncio`` client on a bounded pool (see `plinth.cache`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import pydantic_core
from pydantic import TypeAdapter, ValidationError
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from plinth.cache.settings import CacheSettings
from plinth.errors import CacheUnavailableError, ServiceStateError
from plinth.lifecycle import Ping, Service, State, elapsed_ms, retry_with_backoff
from plinth.settings import redact_url

if TYPE_CHECKING:
    from plinth.embedded.process import EmbeddedService

__all__ = ["Cache", "CacheScope"]

logger = logging.getLogger("plinth")

T = TypeVar("T")
TTL = float | timedelta | None

# A dropped connection (Redis restarted, a proxy closed an idle socket) is
# retried once on a fresh connection; a Redis that is down fails at once.
_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError)


@functools.cache
def _adapter(type_: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_)


_MISS: Any = object()


def _load(raw: bytes | str, type_: Any) -> Any:
    if type_ is None:
        return pydantic_core.from_json(raw)
    try:
        return _adapter(type_).validate_json(raw)
    except ValidationError:
        # Written by an older release whose model differed: recompute, do not fail.
        logger.warning("a cached value does not validate as %r: treated as a miss", type_)
        return _MISS


def _milliseconds(ttl: float | timedelta) -> int:
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if seconds <= 0:
        raise ValueError(f"ttl must be positive, got {seconds!r} s")
    return max(1, round(seconds * 1000))


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Operations:
    """Typed JSON operations on the keys below one prefix."""

    _cache: Cache
    _prefix: str

    @property
    def prefix(self) -> str:
        """The prefix of every key here (without the trailing colon)."""
        return self._prefix

    def key(self, key: str) -> str:
        """The full Redis key for `key`."""
        return f"{self._prefix}:{key}" if self._prefix else key

    def scope(self, *parts: object) -> CacheScope:
        """A view of the keys below ``<prefix>:<part>:...``, e.g. one tenant's."""
        if not parts:
            raise ValueError("scope() needs at least one part")
        return CacheScope(self._cache, self.key(":".join(str(part) for part in parts)))

    @overload
    async def get(self, key: str) -> Any: ...
    @overload
    async def get(self, key: str, type_: type[T]) -> T | None: ...
    async def get(self, key: str, type_: Any = None) -> Any:
        """The value at `key`, validated as `type_` when given; None if absent (or invalid)."""
        with self._cache._translated():
            raw = await self._cache.client.get(self.key(key))
        value = _MISS if raw is None else _load(raw, type_)
        return None if value is _MISS else value

    async def set(self, key: str, value: Any, *, ttl: TTL = None) -> None:
        """Store `value` as JSON; `ttl` (seconds or a timedelta) defaults to ``default_ttl``."""
        data = pydantic_core.to_json(value)
        ttl = ttl if ttl is not None else self._cache.settings.default_ttl
        px = _milliseconds(ttl) if ttl is not None else None
        with self._cache._translated():
            await self._cache.client.set(self.key(key), data, px=px)

    async def get_or_set(
        self, key: str, factory: Callable[[], Awaitable[T]], type_: type[T], *, ttl: TTL = None
    ) -> T:
        """The cached value, or `factory`'s result, cached (a cached None is a hit)."""
        with self._cache._translated():
            raw = await self._cache.client.get(self.key(key))
        value = _MISS if raw is None else _load(raw, type_)
        if value is not _MISS:
            return cast(T, value)
        value = await factory()
        await self.set(key, value, ttl=ttl)
        return value

    async def delete(self, *keys: str) -> int:
        """Delete `keys`; return how many existed."""
        if not keys:
            return 0
        with self._cache._translated():
            deleted = await self._cache.client.delete(*(self.key(key) for key in keys))
        return int(deleted)

    async def exists(self, key: str) -> bool:
        """Whether `key` is present."""
        with self._cache._translated():
            return bool(await self._cache.client.exists(self.key(key)))

    async def ttl(self, key: str) -> float | None:
        """Seconds until `key` expires; None if it is absent or never expires."""
        with self._cache._translated():
            remaining = int(await self._cache.client.pttl(self.key(key)))
        return remaining / 1000 if remaining >= 0 else None

    async def clear(self) -> int:
        """Delete every key below this prefix (SCAN, never KEYS); return how many."""
        if not self._prefix:
            raise ValueError("refusing to clear a cache without a key prefix")
        pattern = _escape_glob(self._prefix) + ":*"
        deleted = 0
        with self._cache._translated():
            batch: list[bytes] = []
            async for key in self._cache.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) == 500:
                    deleted += int(await self._cache.client.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(await self._cache.client.unlink(*batch))
        return deleted


class CacheScope(_Operations):
    """The keys of a `Cache` below one prefix; made by `Cache.scope`."""

    def __init__(self, cache: Cache, prefix: str) -> None:
        self._cache = cache
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"<CacheScope {self._prefix!r}>"


class Cache(_Operations, Service):
    """A Redis cache: one client on a pool, started and closed explicitly.

    Use as the FastAPI lifespan, or ``async with cache:``. `key_prefix` is the
    app's default prefix (its name, say); ``CACHE_KEY_PREFIX`` overrides it.
    Safe to share between concurrent tasks: each command borrows a connection.
    """

    def __init__(self, settings: CacheSettings | None = None, *, key_prefix: str = "") -> None:
        self._settings = settings
        self._default_prefix = key_prefix
        self._cache = self
        self._prefix = key_prefix
        self._state = State.NEW
        self._client: Redis | None = None
        self._version = "unknown"
        self._embedded: EmbeddedService | None = None

    def __repr__(self) -> str:
        where = self._settings.redacted_url() if self._settings is not None else "<from env>"
        return f"<Cache {where} prefix={self._prefix!r} {self._state.value}>"

    @property
    def settings(self) -> CacheSettings:
        """The settings, read from the environment on first use."""
        if self._settings is None:
            self._settings = CacheSettings.load()
        return self._settings

    @property
    def client(self) -> Redis:
        """The ``redis.asyncio`` client; raises `ServiceStateError` unless started."""
        if self._client is None:
            raise self._not_started()
        return self._client

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn Redis connection failures into `CacheUnavailableError`."""
        try:
            yield
        except _UNAVAILABLE as exc:
            raise CacheUnavailableError(f"redis at {self._where()}: {_reason(exc)}") from exc

    def _where(self) -> str:
        return self.settings.redacted_url()

    async def start(self) -> None:
        """Build the pool and prove Redis answers, retrying with backoff."""
        if self._state is State.STARTED:
            return
        if self._state is State.CLOSED:
            raise ServiceStateError("Cache is closed; create a new one to reconnect")
        settings = configured = self.settings
        if settings.key_prefix is not None:
            self._prefix = settings.key_prefix
        if settings.redis_url is None:
            settings = await self._start_embedded(settings)
        assert settings.redis_url is not None
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.max_connections,
            timeout=settings.pool_timeout,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.socket_connect_timeout,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=list(_UNAVAILABLE),
        )
        client = Redis(connection_pool=pool)
        try:
            self._version = await self._connect(client)
        except BaseException:
            await client.aclose()
            await pool.aclose()
            await self._release_embedded()
            self._settings = configured  # a retry starts the embedded server afresh
            raise
        self._client = client
        self._state = State.STARTED
        logger.info("cache connected to %s (prefix %r)", self._where(), self._prefix)

    async def _start_embedded(self, settings: CacheSettings) -> CacheSettings:
        """Start or reuse the project's Valkey (the cwd's project) and point at it."""
        from plinth.embedded.valkey import start_valkey

        service = await asyncio.to_thread(start_valkey)
        self._embedded = service
        service.announce()
        logger.warning("REDIS_URL unset: using embedded Valkey at %s", redact_url(service.url))
        self._settings = settings.model_copy(update={"redis_url": service.url})
        return self._settings

    async def _release_embedded(self) -> None:
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            await asyncio.to_thread(embedded.release_announced)

    async def _connect(self, client: Redis) -> str:
        async def attempt() -> str:
            info = await client.info("server")
            # Valkey answers redis_version 7.2.4 (its compatibility level) too.
            return str(info.get("valkey_version") or info.get("redis_version", "unknown"))

        return await retry_with_backoff(
            attempt,
            retries=self.settings.connect_retries,
            delay=self.settings.retry_delay,
            target=self._where(),
            # A wrong password stays wrong: fail at once.
            transient=lambda exc: not isinstance(exc, redis_errors.AuthenticationError),
            reason=_reason,
            error=CacheUnavailableError,
            catch=_UNAVAILABLE,
        )

    async def close(self) -> None:
        """Close the client and its pool; the cache cannot be started again."""
        if self._client is not None:
            pool = self._client.connection_pool
            await self._client.aclose()
            await pool.aclose()
        self._client = None
        await self._release_embedded()
        self._state = State.CLOSED

    async def ping(self, timeout: float = 2.0) -> Ping:
        """``PING`` within `timeout` seconds; raise `CacheUnavailableError`."""
        client = self.client
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                with self._translated():
                    await client.ping()
        except TimeoutError as exc:
            raise CacheUnavailableError(f"redis at {self._where()}: timed out") from exc
        return Ping(elapsed_ms(started), self._version)


def _reason(exc: BaseException) -> str:
    """A one-line reason; redis-py's messages name host and port, never the password."""
    if isinstance(exc, redis_errors.AuthenticationError):
        return "authentication failed (check the password in REDIS_URL)"
    if isinstance(exc, redis_errors.TimeoutError):
        return "timed out"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message
