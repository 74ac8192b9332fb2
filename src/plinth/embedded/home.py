"""Where a project's embedded servers live: one directory per project.

Every entry point (``plinth``, pytest, ``alembic``, an app under uvicorn, the
benchmarks) starts from a different directory of the same project;
`project_root` makes them find one home, and so one server of each kind.
Non-root: ``<project>/.plinth/``; root: ``/var/lib/plinth/<project>-<hash>/``
(a place the PostgreSQL server user can reach); ``PLINTH_EMBEDDED_DIR``
overrides both. Each server keeps its data in a subdirectory
(``postgres18/``, ``valkey/``, ``seaweedfs/``) beside its lock, users and
state files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["ENV_DIR", "ROOT_HOME", "embedded_home", "project_root"]

ENV_DIR = "PLINTH_EMBEDDED_DIR"
ROOT_HOME = Path("/var/lib/plinth")
_PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


def project_root(path: Path) -> Path:
    """The project `path` belongs to: the nearest directory, `path` or above, that
    holds ``pyproject.toml``, ``setup.cfg``, ``setup.py`` or ``.git``; else `path`.
    """
    start = path.expanduser().resolve()
    for candidate in (start, *start.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return start


def embedded_home(project_dir: Path | None = None) -> Path:
    """The directory of the embedded servers of `project_dir`'s project (default: cwd)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override).expanduser().resolve()
    project = project_root(project_dir if project_dir is not None else Path.cwd())
    if os.geteuid() != 0:
        return project / ".plinth"
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:8]
    return ROOT_HOME / f"{project.name or 'root'}-{digest}"
