"""Secrets generated once per project and kept in its embedded home (mode 0600).

The embedded Valkey's password, the embedded S3's keys and the development
encryption keys are made on first use and read back afterwards, so that
data written in one run stays readable in the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from plinth.errors import EmbeddedServerError

__all__ = ["load_or_create"]


def load_or_create(path: Path, make: Callable[[], dict[str, str]]) -> tuple[dict[str, str], bool]:
    """The secrets in `path`, made by `make` and written (0600) if it is missing.

    Returns them and whether they were made now. Two processes creating them
    at once agree: the second one reads what the first one wrote.
    """
    existing = _read(path)
    if existing is not None:
        return existing, False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(make(), out)
            out.write("\n")
        try:
            os.link(tmp, path)  # fails if another process won the race
            created = True
        except FileExistsError:
            created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    found = _read(path)
    if found is None:
        raise EmbeddedServerError(f"{path} holds no valid secrets: delete it to make new ones")
    return found, created


def _read(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise EmbeddedServerError(
            f"{path} holds no valid secrets: delete it to make new ones"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise EmbeddedServerError(f"{path} holds no valid secrets: delete it to make new ones")
    return data
