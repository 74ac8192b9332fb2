"""``plinth init``: a new project with one app that runs, migrates and tests.

The files come from ``scaffold/``: ``*.tmpl`` files with ``${package}``,
``${project}`` and ``${title}`` filled in (``package/`` becomes the app's
package), plus Plinth's revision template, so that ``plinth db revision``
works right away.
"""

from __future__ import annotations

import keyword
import re
import string
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from plinth.cli._common import console, fail
from plinth.migrations.config import REVISION_TEMPLATE

__all__ = ["init"]

_SCAFFOLD = resources.files("plinth.cli") / "scaffold"
_RENAMED = {"env.example": ".env.example", "gitignore": ".gitignore"}


def init(
    directory: Annotated[Path, typer.Argument(help="The new project's directory.")],
    name: Annotated[
        str | None,
        typer.Option(help="The app's package name (default: from the directory's name)."),
    ] = None,
) -> None:
    """Create a project with one app: models, migrations, a test, settings."""
    package = name or re.sub(r"\W", "_", directory.resolve().name.lower()).strip("_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise fail(f"{package!r} is not a valid Python package name: pass --name")
    if directory.exists() and any(directory.iterdir()):
        raise fail(f"{str(directory)!r} is not empty: choose a new directory")
    values = {
        "package": package,
        "project": package.replace("_", "-"),
        "title": package.replace("_", " ").capitalize(),
    }
    written = _copy(_SCAFFOLD, directory, package, values)
    template = directory / package / "migrations" / "script.py.mako"
    template.write_text(REVISION_TEMPLATE.read_text())
    (directory / package / "migrations" / "versions").mkdir()
    written += 1
    console.print(f"Created {directory} ({written} files): app package {package!r}")
    console.print(
        f"Next:\n  cd {directory}\n"
        f'  plinth db revision -m "create notes" --app {package}\n'
        f"  pytest\n"
        f"  plinth serve {package}"
    )


def _copy(source: Traversable, target: Path, package: str, values: dict[str, str]) -> int:
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for item in source.iterdir():
        if item.is_dir():
            folder = package if item.name == "package" else item.name
            written += _copy(item, target / folder, package, values)
        elif item.name.endswith(".tmpl"):
            stem = item.name.removesuffix(".tmpl")
            text = string.Template(item.read_text()).substitute(values)
            (target / _RENAMED.get(stem, stem)).write_text(text)
            written += 1
    return written
