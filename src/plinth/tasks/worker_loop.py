"""`WorkerLoop`: an event loop per worker process, its services started on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from plinth.errors import ServiceStateError
from plinth.lifecycle import Service, State

__all__ = ["WorkerLoop"]

logger = logging.getLogger("plinth")

T = TypeVar("T")


class WorkerLoop:
    """An event loop of the worker process's own, with `services` started on it.

    Create it at import time, in the module that defines the tasks; nothing
    starts until the first `run` (or `start`) in a worker process::

        worker = WorkerLoop(database, storage)
        worker.connect_celery()

        @celery_app.task
        def count_jobs() -> int:
            return worker.run(_count_jobs())  # an `async def` using `database`
    """

    def __init__(self, *services: Service, name: str = "plinth-worker-loop") -> None:
        self.services = services
        """Started in this order on the loop, closed in the reverse order."""
        self.name = name
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._starting: concurrent.futures.Future[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self._owned() else "stopped"
        return f"<WorkerLoop {self.name} {state} pid={self._pid}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """This process's loop; raises `ServiceStateError` before `start`."""
        if not self._owned():
            raise ServiceStateError("WorkerLoop is not started in this process")
        assert self._loop is not None
        return self._loop

    def _owned(self) -> bool:
        """Whether the loop exists and belongs to this process (not inherited by a fork)."""
        return self._loop is not None and self._pid == os.getpid()

    def begin(self) -> concurrent.futures.Future[None]:
        """Start the loop's thread and schedule the services' start; do not wait.

        In a child forked from a process that had a loop, that loop's thread
        does not exist: the inherited state is dropped (never closed, it is
        the parent's) and a new loop is made here.
        """
        with self._lock:
            if self._owned() and self._starting is not None:
                return self._starting
            if not self._owned():
                self._make_loop()
            assert self._loop is not None
            self._starting = asyncio.run_coroutine_threadsafe(self._start_services(), self._loop)
            return self._starting

    def _make_loop(self) -> None:
        for service in self.services:
            if service._state is not State.NEW:
                name = type(service).__name__
                raise ServiceStateError(
                    f"{name} is {service._state.value} before the worker loop started it: "
                    "WorkerLoop starts its services in each worker process, on its own loop "
                    "(one started before a fork shares its connections with every child)"
                )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        thread.start()
        self._pid, self._loop, self._thread = os.getpid(), loop, thread

    async def _start_services(self) -> None:
        # Service.start returns at once for a started service: after a failed
        # start, the next task retries only what did not start.
        for service in self.services:
            await service.start()
        logger.info("%s: services started in process %d", self.name, os.getpid())

    def start(self, timeout: float | None = None) -> None:
        """Start the loop and the services, and wait for them (`timeout` seconds)."""
        starting = self.begin()
        try:
            starting.result(timeout)
        except BaseException:
            with self._lock:
                if self._starting is starting and starting.done():
                    self._starting = None  # the next call tries again
            raise

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on this process's loop (started first if need be), return its result.

        Called from a task, never from the loop's own thread. If the wait is
        interrupted (a Celery time limit, `timeout`), the coroutine is
        cancelled, and its unit of work rolls back.
        """
        if threading.current_thread() is self._thread and self._owned():
            coroutine.close()
            raise RuntimeError("WorkerLoop.run called on the loop itself: await the coroutine")
        try:
            self.start()
        except BaseException:
            coroutine.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self, timeout: float = 30.0) -> None:
        """Close the services (reverse order) and stop the loop; idempotent.

        A loop inherited across a fork is not this process's to close: it is
        forgotten.
        """
        with self._lock:
            loop, thread, owned = self._loop, self._thread, self._owned()
            self._pid = self._loop = self._thread = self._starting = None
        if loop is None or not owned:
            return
        assert thread is not None
        try:
            asyncio.run_coroutine_threadsafe(self._close_services(), loop).result(timeout)
        except Exception:
            logger.exception("%s: closing its services failed", self.name)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()

    async def _close_services(self) -> None:
        for service in reversed(self.services):
            if service._state is State.STARTED:
                try:
                    await service.close()
                except Exception:
                    logger.exception("%s: closing %r failed", self.name, service)
        await asyncio.get_running_loop().shutdown_asyncgens()
        logger.info("%s: services closed in process %d", self.name, os.getpid())

    def connect_celery(self) -> Callable[[], None]:
        """Start in each worker process, close at its end, via Celery's signals.

        Prefork: ``worker_process_init`` begins the start in the child (not
        waiting: the pool kills a child whose initialisation takes over 4 s),
        ``worker_process_shutdown`` closes. Solo and threads pools: the
        first task starts the loop, ``worker_shutdown`` closes it. The
        signals are Celery's, process-wide: connect one `WorkerLoop` per worker.
        Returns a function that disconnects them.
        """
        from celery import signals

        def process_init(**_: Any) -> None:
            try:
                self.begin()
            except Exception:  # the first task reports it
                logger.exception("%s: cannot start", self.name)

        def shutdown(**_: Any) -> None:
            self.close()

        # weak=False: these closures have no other reference.
        receivers = [
            (signals.worker_process_init, process_init),
            (signals.worker_process_shutdown, shutdown),
            (signals.worker_shutdown, shutdown),
        ]
        for signal, receiver in receivers:
            signal.connect(receiver, weak=False)

        def disconnect() -> None:
            for signal, receiver in receivers:
                signal.disconnect(receiver)

        return disconnect
