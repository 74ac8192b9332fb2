"""`plinth.tasks`: the worker loop's lifecycle and Celery's settings.

A real Celery worker (prefork, through Redis and PostgreSQL) runs in
``apps/pdftranslate/tests/test_worker.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Iterator

import pytest
from celery import signals
from sqlalchemy import URL, func, select

from plinth import (
    CelerySettings,
    ConfigurationError,
    Database,
    DatabaseSettings,
    ServiceStateError,
    WorkerLoop,
)
from plinth.lifecycle import Service, State


class Recorder(Service):
    """A service that records on which thread and loop it starts and closes."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[tuple[str, int]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        if self._state is State.STARTED:
            return
        if self.failures:
            self.failures -= 1
            raise ConnectionError("not yet")
        self.loop = asyncio.get_running_loop()
        self.events.append(("start", threading.get_ident()))
        self._state = State.STARTED

    async def close(self) -> None:
        self.events.append(("close", threading.get_ident()))
        self._state = State.CLOSED


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(recorder: Recorder) -> Iterator[WorkerLoop]:
    loop = WorkerLoop(recorder, name="test-loop")
    try:
        yield loop
    finally:
        loop.close()


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_tasks_share_one_loop_with_the_services_started_on_it(
    worker: WorkerLoop, recorder: Recorder
) -> None:
    assert recorder._state is State.NEW  # nothing happens at creation
    loops = {worker.run(current_loop()) for _ in range(5)}
    assert loops == {recorder.loop}
    assert worker.loop is recorder.loop
    assert [event for event, _ in recorder.events] == ["start"]
    started_on = recorder.events[0][1]
    assert started_on != threading.get_ident()  # the loop's own thread
    assert "running" in repr(worker)

    worker.close()
    assert [event for event, _ in recorder.events] == ["start", "close"]
    assert recorder.events[1][1] == started_on
    assert recorder.loop is not None
    assert recorder.loop.is_closed()
    assert "stopped" in repr(worker)
    worker.close()  # idempotent
    with pytest.raises(ServiceStateError, match="not started in this process"):
        worker.loop  # noqa: B018


def test_a_failed_start_is_retried_by_the_next_task() -> None:
    recorder = Recorder(failures=1)
    worker = WorkerLoop(recorder)
    try:
        with pytest.raises(ConnectionError, match="not yet"):
            worker.run(current_loop())
        assert worker.run(current_loop()) is recorder.loop
    finally:
        worker.close()


def test_a_service_started_elsewhere_is_refused(recorder: Recorder) -> None:
    recorder._state = State.STARTED  # as one started before the fork would be
    worker = WorkerLoop(recorder)
    coroutine = current_loop()
    with pytest.raises(ServiceStateError, match="Recorder is started before the worker loop"):
        worker.run(coroutine)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED  # never left unawaited


def test_a_child_process_never_uses_nor_closes_its_parents_loop(
    worker: WorkerLoop, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker.start()
    loop, thread = worker.loop, worker._thread
    assert thread is not None
    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # as after a fork
    # The services came started from the parent: their connections are the
    # parent's, so the child refuses them rather than share them.
    with pytest.raises(ServiceStateError, match="shares its connections"):
        worker.run(current_loop())
    worker.close()  # forgets the parent's loop, closes nothing of it
    assert [event for event, _ in recorder.events] == ["start"]
    monkeypatch.undo()
    assert not loop.is_closed()  # the parent's, left alone
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_a_task_interrupted_while_waiting_cancels_its_coroutine(worker: WorkerLoop) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        worker.run(slow(), timeout=0.05)
    assert cancelled.wait(5)
    assert worker.run(current_loop()) is worker.loop  # the loop goes on


def test_run_on_the_loop_itself_is_refused(worker: WorkerLoop) -> None:
    async def nested() -> None:
        inner = current_loop()
        with pytest.raises(RuntimeError, match="await the coroutine"):
            worker.run(inner)
        assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED

    worker.run(nested())


@pytest.fixture
def own_signals() -> Iterator[None]:
    """Celery's worker signals are process-wide: an app imported earlier in this
    run (pdftranslate's tasks module) connected its WorkerLoop to them, and a
    signal sent here would start that app's services too. These tests see only
    the receivers they connect."""
    worker_signals = (
        signals.worker_process_init,
        signals.worker_process_shutdown,
        signals.worker_shutdown,
    )
    saved = [(signal, signal.receivers) for signal in worker_signals]
    for signal in worker_signals:
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        for signal, receivers in saved:
            signal.receivers = receivers
            signal.sender_receivers_cache.clear()


@pytest.mark.usefixtures("own_signals")
def test_celery_signals_start_and_close_the_loop(worker: WorkerLoop, recorder: Recorder) -> None:
    disconnect = worker.connect_celery()
    try:
        signals.worker_process_init.send(sender=None)
        worker.start(timeout=5)  # begun by the signal; waits for it
        assert [event for event, _ in recorder.events] == ["start"]
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
        assert [event for event, _ in recorder.events] == ["start", "close"]
        signals.worker_shutdown.send(sender=None)  # the main process: nothing left to close
    finally:
        disconnect()
    signals.worker_process_init.send(sender=None)
    assert recorder._state is State.CLOSED  # disconnected: no new start


@pytest.mark.usefixtures("own_signals")
def test_a_failing_start_in_the_process_init_signal_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    recorder._state = State.STARTED
    worker = WorkerLoop(recorder, name="refusing-loop")
    disconnect = worker.connect_celery()
    try:
        signals.worker_process_init.send(sender=None)
    finally:
        disconnect()
    assert "refusing-loop: cannot start" in caplog.text


async def _backend(database: Database) -> tuple[int, int]:
    async with database.transaction() as session:
        backend = await session.scalar(select(func.pg_backend_pid()))
    return id(database.engine), int(backend or 0)


def test_a_database_on_the_worker_loop_keeps_its_pool_between_tasks(plinth_server: URL) -> None:
    database = Database(DatabaseSettings(database_url=plinth_server, app_env="test"))
    worker = WorkerLoop(database)
    try:
        runs = {worker.run(_backend(database)) for _ in range(5)}
    finally:
        worker.close()
    assert len(runs) == 1  # one engine, one pooled connection, for every task
    assert repr(database).endswith("closed>")


def test_celery_settings_default_to_redis_database_1(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_QUEUE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "rediss://:s3cret@cache.internal:6380/0")
    settings = CelerySettings.load(_env_file=None)
    assert settings.celery_config()["task_default_queue"] == "celery"
    assert settings.broker == "rediss://:s3cret@cache.internal:6380/1"
    assert "s3cret" not in repr(settings)
    assert ":***@cache.internal:6380" in repr(settings)

    monkeypatch.setenv("REDIS_URL", "unix:///run/redis.sock?db=0&password=x")
    assert CelerySettings.load(_env_file=None).broker == "unix:///run/redis.sock?password=x&db=1"

    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest@rabbit//")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://results:6379/3")
    config = CelerySettings.load(_env_file=None).celery_config()
    assert config["broker_url"] == "amqp://guest@rabbit//"
    assert config["result_backend"] == "redis://results:6379/3"
    assert config["task_acks_late"] is True
    assert config["worker_prefetch_multiplier"] == 1


def test_production_celery_settings_need_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError) as error:
        CelerySettings.load(_env_file=None)
    assert "CELERY_BROKER_URL and CELERY_RESULT_BACKEND (or REDIS_URL)" in str(error.value)
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest@rabbit//")
    with pytest.raises(ConfigurationError, match="CELERY_RESULT_BACKEND"):
        CelerySettings.load(_env_file=None)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://results:6379/3")
    assert CelerySettings.load(_env_file=None).broker == "amqp://guest@rabbit//"


class FailingClose(Recorder):
    async def close(self) -> None:
        raise OSError("socket already gone")


def test_a_service_that_fails_to_close_does_not_keep_the_others_open(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    worker = WorkerLoop(recorder, FailingClose(), name="closing-loop")
    worker.start()
    worker.close()
    assert [event for event, _ in recorder.events] == ["start", "close"]
    assert "closing-loop: closing <" in caplog.text
    assert "socket already gone" in caplog.text
