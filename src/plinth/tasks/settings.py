"""Where Celery's messages and results go: ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from plinth.settings import AppEnv, PlinthSettings, redact_url

if TYPE_CHECKING:
    from plinth.embedded.process import EmbeddedService

__all__ = ["CelerySettings"]

logger = logging.getLogger("plinth")

# The project's embedded Valkey, started or reused once per process the first
# time settings without REDIS_URL need a broker, and held until the process
# exits: Celery's clients connect for the process's whole life.
_embedded: EmbeddedService | None = None
_embedded_lock = threading.Lock()


def _embedded_valkey() -> str:
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            from plinth.embedded.valkey import start_valkey

            service = _embedded = start_valkey()
            service.announce()
            logger.warning(
                "REDIS_URL unset: Celery uses the embedded Valkey on port %d", service.port
            )
            atexit.register(service.release_announced)
        return _embedded.url


def _redis_database(url: str, number: int) -> str:
    """`url` (a Redis URL) naming database `number` instead of its own."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [q for q in parts.query.split("&") if q and not q.startswith("db=")]
        return f"unix://{parts.netloc}{parts.path}?{'&'.join([*query, f'db={number}'])}"
    return parts._replace(path=f"/{number}").geturl()


class CelerySettings(PlinthSettings):
    """Where Celery's messages and results go.

    ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``; both default to
    Redis database 1 on ``REDIS_URL``'s server, apart from the cache's
    database. With ``REDIS_URL`` unset too, outside production, that server
    is the project's embedded Valkey (the one `plinth.Cache` uses), started
    or reused when a URL is first asked for: ``plinth serve --worker`` needs
    no variable. Its persistence is off: a stopped Valkey loses queued
    messages, so jobs must be re-sent from the database (as the PDF
    translation app's sweep does). ``CELERY_QUEUE`` names the queue. The
    `repr` masks passwords.
    """

    broker_url: str | None = Field(default=None, validation_alias="CELERY_BROKER_URL")
    """``CELERY_BROKER_URL``: ``redis://[:password@]host:6379/1`` (any Celery broker URL)."""

    result_backend: str | None = Field(default=None, validation_alias="CELERY_RESULT_BACKEND")
    """``CELERY_RESULT_BACKEND``: where task results are kept."""

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    """``REDIS_URL``: the server whose database 1 is the default broker and backend;
    unset outside production: the embedded Valkey."""

    app_env: AppEnv = Field(default="development", validation_alias="APP_ENV")
    """``APP_ENV``: production needs ``REDIS_URL`` or both Celery URLs."""

    queue: str = Field(default="celery", min_length=1, validation_alias="CELERY_QUEUE")
    """``CELERY_QUEUE``: the queue tasks are sent to and workers consume (Celery's
    ``task_default_queue``): apps or environments sharing one broker each name theirs."""

    @model_validator(mode="after")
    def _server_required_in_production(self) -> CelerySettings:
        if self.app_env == "production" and self.redis_url is None:
            missing = [
                name
                for name, value in (
                    ("CELERY_BROKER_URL", self.broker_url),
                    ("CELERY_RESULT_BACKEND", self.result_backend),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} (or REDIS_URL) required when APP_ENV=production"
                )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    @property
    def broker(self) -> str:
        """The broker URL in use."""
        return self.broker_url or _redis_database(self._redis_server(), 1)

    @property
    def backend(self) -> str:
        """The result backend in use."""
        return self.result_backend or _redis_database(self._redis_server(), 1)

    def _redis_server(self) -> str:
        return self.redis_url if self.redis_url is not None else _embedded_valkey()

    def celery_config(self) -> dict[str, Any]:
        """Settings for ``Celery(...).conf.update``: the URLs and safe defaults.

        A task is acknowledged once it has run, not when it is received, so a
        worker that dies mid-task (killed, out of memory) leaves it to another:
        tasks must be idempotent. Each worker process reserves one task at a
        time; messages and results are JSON.
        """
        return {
            "broker_url": self.broker,
            "result_backend": self.backend,
            "task_default_queue": self.queue,
            "broker_connection_retry_on_startup": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "result_extended": True,
        }
