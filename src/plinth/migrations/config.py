"""An app's migrations folder as Alembic sees it: its config and its scripts.

No ``alembic.ini`` is needed: the script location is the app's
``migrations/`` folder. Everything else in `plinth.migrations` builds on this;
importing it registers ``alembic-postgresql-enum`` (enum types and values in
autogenerate).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import alembic_postgresql_enum  # noqa: F401  (autogenerate: enum types, values; ALTER TYPE ops)
from alembic.config import Config
from alembic.script import ScriptDirectory

from plinth.errors import MigrationError

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["REVISION_TEMPLATE", "alembic_config", "heads", "load_scripts", "revision_template"]

REVISION_TEMPLATE = Path(__file__).with_name("script.py.mako")
"""Plinth's template for new revision files (typed, ``from __future__ import annotations``)."""


def revision_template(migrations: Path) -> Path | None:
    """Give `migrations` Plinth's revision template if it has none; return what was written.

    Alembic renders new revisions from ``migrations/script.py.mako`` and fails
    with a long traceback without it.
    """
    target = migrations / "script.py.mako"
    if target.exists():
        return None
    target.write_text(REVISION_TEMPLATE.read_text())
    return target


def alembic_config(migrations: Path, connection: Connection | None = None) -> Config:
    """An Alembic `Config` for the app's migrations folder (no ini file)."""
    if not (migrations / "env.py").is_file():
        raise MigrationError(f"no migrations at {str(migrations)!r}: env.py is missing")
    # Alembic's default `stdout` is bound when alembic is imported; pass the current one.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def heads(migrations: Path) -> tuple[str, ...]:
    """The head revisions of the scripts (more than one means unmerged branches)."""
    return tuple(load_scripts(migrations).get_heads())


def load_scripts(migrations: Path) -> ScriptDirectory:
    """The app's revisions, checked: a missing file or a mistyped ``down_revision``
    is a one-line `MigrationError` (Alembic warns, then fails with a bare KeyError)."""
    script = ScriptDirectory.from_config(alembic_config(migrations))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script.get_heads()
        except Exception as exc:
            problems = [str(w.message).strip() for w in caught] or [f"{type(exc).__name__}: {exc}"]
            raise MigrationError(
                f"the revision history in {str(migrations / 'versions')!r} is broken: "
                f"{'; '.join(problems)} (a revision file is missing, or a down_revision is "
                "mistyped)"
            ) from exc
    return script
