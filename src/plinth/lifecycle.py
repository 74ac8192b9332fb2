"""The lifecycle shared by `Database`, `Cache` and `Storage`.

Each is new, then started, then closed, and says so when used in the wrong
state. Each starts by proving that its server answers, retrying transient
failures with exponential backoff, because a container often starts before
the services it needs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

from plinth.errors import PlinthError, ServiceStateError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["Ping", "Service", "State", "elapsed_ms", "retry_with_backoff", "run_to_completion"]

logger = logging.getLogger("plinth")

T = TypeVar("T")


@dataclass(frozen=True)
class Ping:
    """The outcome of one round trip to a server."""

    latency_ms: float
    """Milliseconds the round trip took."""
    server_version: str
    """The server's version, e.g. ``18.1``."""


class State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Service:
    """Something started once and closed once: ``async with`` it or use `lifespan`."""

    _state: State = State.NEW

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    def _not_started(self) -> ServiceStateError:
        """The error for using what only a started service has."""
        name = type(self).__name__
        return ServiceStateError(
            f"{name} is {self._state.value}: call `await {name.lower()}.start()` first "
            f"(FastAPI does it when the app's lifespan includes `{name.lower()}.lifespan`)"
        )

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """FastAPI lifespan: start on start-up, close on shutdown."""
        await self.start()
        try:
            yield
        finally:
            await self.close()


async def retry_with_backoff(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    delay: float,
    target: str,
    transient: Callable[[BaseException], bool],
    reason: Callable[[BaseException], str],
    error: type[PlinthError],
    catch: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Run `attempt`, retrying transient failures after `delay`, then twice that, ...

    The final failure, or a failure that no retry can fix, raises `error`
    with a one-line, credential-free message naming `target`.
    """
    started = time.monotonic()
    for number in range(retries + 1):
        try:
            return await attempt()
        except catch as exc:
            if number == retries or not transient(exc):
                tries = f"{number + 1} attempt{'s' if number else ''}"
                elapsed = time.monotonic() - started
                raise error(
                    f"cannot connect to {target} after {tries} ({elapsed:.1f} s): {reason(exc)}"
                ) from exc
            wait = delay * 2**number
            logger.warning(
                "cannot connect to %s (%s); retry %d of %d in %.1f s",
                target,
                reason(exc),
                number + 1,
                retries,
                wait,
            )
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await `coroutine` in a task of its own that the caller's cancellation
    cannot stop halfway; re-raise that cancellation once the task has ended.

    For clean-up (a commit, a close) that must not be abandoned partway, as
    SQLAlchemy's own ``async with session.begin():`` does it.
    """
    task = asyncio.ensure_future(coroutine)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.done():
                raise  # the task itself was cancelled
            cancelled = error
        else:
            break
    if cancelled is not None:
        raise cancelled
    return result


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading), rounded."""
    return round((time.perf_counter() - started) * 1000, 2)
