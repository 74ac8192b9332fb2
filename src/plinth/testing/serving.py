"""An app served as a real process, for end-to-end tests: ``plinth serve`` on loopback.

    with served_app("apps/translator", env=env) as app:
        httpx.get(f"{app.url}/health/ready")

The process runs ``plinth serve`` (migrate to head, then uvicorn) on a free
port of 127.0.0.1; the block starts once the app answers `wait_for` (any
status: it is listening), and the process gets SIGTERM on exit. Its output
is kept in `ServedApp.output`, readable at any time, and the exit code in
`ServedApp.returncode` once it has stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryFile
from typing import IO

import httpx

from plinth.embedded.ports import HOST, free_port

__all__ = ["ServedApp", "served_app"]


@dataclass
class ServedApp:
    """A running ``plinth serve`` process."""

    url: str
    """``http://127.0.0.1:PORT``."""
    process: subprocess.Popen[bytes]
    _log: IO[bytes] = field(repr=False)
    returncode: int | None = None
    """The exit code, once the block has ended."""
    _kept: str | None = field(default=None, repr=False)

    @property
    def output(self) -> str:
        """What the process printed so far (stdout and stderr together)."""
        if self._kept is not None:
            return self._kept  # the block has ended and the log file is gone
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@contextmanager
def served_app(
    app: str | Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    wait_for: str = "/health/live",
    timeout: float = 60.0,
) -> Iterator[ServedApp]:
    """Serve `app` (a directory, or a package name relative to `cwd`) until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "plinth", "serve", str(app), "--port", str(port)]
    with TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=dict(env) if env is not None else None, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        served = ServedApp(f"http://{HOST}:{port}", process, log)
        try:
            _wait(served, wait_for, timeout)
            yield served
        finally:
            process.terminate()
            try:
                served.returncode = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                served.returncode = process.wait()
            served._kept = served.output


def _wait(served: ServedApp, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if served.process.poll() is not None:
            raise AssertionError(f"plinth serve exited early:\n{served.output}")
        try:
            httpx.get(served.url + path, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"plinth serve did not answer in {timeout:.0f} s:\n{served.output}"
                ) from None
            time.sleep(0.1)
