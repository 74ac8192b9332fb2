"""Async task bodies in a task queue's worker (Celery): one event loop per process.

A worker such as Celery's calls each task as a plain function, in processes
it forks (the default *prefork* pool) or in threads (``--pool threads``,
``solo``). Async code using a `Database` there needs three things, which
`WorkerLoop` provides:

- **An engine made in the process that uses it.** asyncpg's connections are
  sockets bound to the event loop that opened them; a child that inherits
  its parent's pool after a fork shares those sockets with it, and both see
  each other's replies. `WorkerLoop` starts its services in the worker
  process, after the fork, and refuses a service that is started already
  (one started before the fork, or on another loop).
- **One event loop for the process's life**, so the connection pool lives
  from task to task. ``asyncio.run`` per task would build the engine,
  connect and dispose of it for every task (see `docs/tasks.md`).
- **A clean end**: the services are closed, the pool disposed, when the
  worker process stops.

The loop runs in a daemon thread of the worker process; `WorkerLoop.run`
hands it a coroutine and waits for the result, so it works from any pool
(``prefork``, ``solo``, ``threads``: concurrent tasks then share the loop
and the pool). If the waiting task is interrupted (a time limit), the
coroutine is cancelled and its unit of work rolled back.

`WorkerLoop.connect_celery` ties it to Celery's signals: the services start
in ``worker_process_init`` (in the background, so a slow database never
trips the pool's start-up timeout) and close in ``worker_process_shutdown``
and ``worker_shutdown``. Without Celery, `start` / `run` / `close` are all
there is. `CelerySettings` reads ``CELERY_BROKER_URL`` and
``CELERY_RESULT_BACKEND`` (by default Redis database 1 of ``REDIS_URL``, or of
the project's embedded Valkey when ``REDIS_URL`` is unset outside production).

Needs the ``celery`` extra for `connect_celery`: ``pip install 'plinth-pg[celery]'``.

Modules: `worker_loop` (`WorkerLoop`) and `settings` (`CelerySettings`).
"""

from plinth.tasks.settings import CelerySettings as CelerySettings
from plinth.tasks.worker_loop import WorkerLoop as WorkerLoop

__all__ = ["CelerySettings", "WorkerLoop"]
