"""The documentation: the getting-started guide runs as written, and the site builds.

`test_the_getting_started_guide_runs` executes every fenced code block of
``docs/getting-started.md`` in order, in a new directory outside the repository:
``bash`` blocks line by line as subprocesses (``cd`` changes the directory,
``pip install`` is checked against the extras instead of run, ``plinth serve`` is
started, asked for ``/health/ready`` and stopped), ``python`` blocks written to the
file their ``title`` names. Any other block fails the test, so the guide holds no
code that is not run. The database is the suite's test server: ``scratch_url`` for
``DATABASE_URL``, ``plinth_server`` for the guide's ``pytest`` (``--plinth-url``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from plinth.settings import PlinthSettings
from plinth.testing import served_app

ROOT = Path(__file__).parents[1]
GUIDE = ROOT / "docs" / "getting-started.md"
BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^```(?P<lang>\w*)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    body: str


def code_blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a page, in order."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        title = _TITLE.search(match["attrs"])
        blocks.append(Block(match["lang"], title["title"] if title else None, match["body"]))
    return blocks


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


class Guide:
    """Runs a guide's blocks: one shell, one working directory, one environment."""

    def __init__(self, cwd: Path, env: dict[str, str], test_server: URL) -> None:
        self.cwd = cwd
        self.env = env
        self.test_server = test_server.render_as_string(hide_password=False)
        self.ran: list[str] = []

    def run(self, block: Block) -> None:
        if block.lang == "bash":
            for line in block.body.splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    self.command(words)
        elif block.lang == "python":
            assert block.title, f"a python block needs title=PATH:\n{block.body}"
            path = self.cwd / block.title
            assert path.parent.is_dir(), f"{block.title}: no such directory in the project"
            path.write_text(block.body)
            self.ran.append(f"write {block.title}")
        else:
            pytest.fail(f"the guide has a {block.lang or 'plain'!r} block that no test runs")

    def command(self, words: list[str]) -> None:
        self.ran.append(shlex.join(words))
        match words:
            case ["cd", directory]:
                self.cwd = self.cwd / directory
                assert self.cwd.is_dir(), f"cd {directory}: no such directory"
            case ["pip", "install", "-e", requirement]:
                # Plinth is installed here already; the extras the guide names must exist.
                extras = re.fullmatch(r".*\[(?P<extras>[\w,]+)\]", requirement)
                assert extras is not None, requirement
                assert set(extras["extras"].split(",")) <= _extras(), requirement
            case ["pytest", *options]:
                args = [str(BIN / "pytest"), "-p", "no:cacheprovider", *options]
                result = _run([*args, "--plinth-url", self.test_server], self.cwd, self.env)
                summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
                assert result.returncode == 0, result.stdout + result.stderr
                assert " passed" in summary, summary
            case ["plinth", "serve", *arguments]:
                self.serve(arguments)
            case ["plinth", *arguments]:
                result = _run([str(BIN / "plinth"), *arguments], self.cwd, self.env)
                assert result.returncode == 0, f"{shlex.join(words)}:\n{result.stderr}"
            case _:
                pytest.fail(f"the guide runs {shlex.join(words)!r}, which this test cannot run")

    def serve(self, arguments: list[str]) -> None:
        (app,) = arguments
        with served_app(app, cwd=self.cwd, env=self.env) as served:
            ready = httpx.get(f"{served.url}/health/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            assert httpx.get(f"{served.url}/docs", timeout=5).status_code == 200


def test_the_guide_has_code_for_every_step() -> None:
    blocks = code_blocks(GUIDE.read_text())
    assert [b.lang for b in blocks].count("bash") >= 4
    assert {b.title for b in blocks if b.lang == "python"} >= {
        "bookmarks/models.py",
        "bookmarks/main.py",
    }


def test_the_getting_started_guide_runs(
    tmp_path: Path, scratch_url: URL, plinth_server: URL
) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT), "the project must be outside the repo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST"))}
    env["DATABASE_URL"] = scratch_url.render_as_string(hide_password=False)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    guide = Guide(tmp_path, env, plinth_server)
    for block in code_blocks(GUIDE.read_text()):
        guide.run(block)
    assert "plinth db revision -m 'create bookmarks' --app bookmarks" in guide.ran
    assert guide.ran[-1] == "pytest"


def _settings_classes() -> list[type[PlinthSettings]]:
    from plinth.db.settings import DatabaseSettings
    from plinth.migrations.guard import MigrationSettings
    from plinth.web.limits import HttpSettings

    classes: list[type[PlinthSettings]] = [DatabaseSettings, MigrationSettings, HttpSettings]
    for module, name in [
        ("plinth.cache", "CacheSettings"),
        ("plinth.storage", "StorageSettings"),
        ("plinth.encryption", "EncryptionSettings"),
        ("plinth.tasks", "CelerySettings"),
    ]:
        with contextlib.suppress(ImportError):  # each needs its extra
            classes.append(getattr(importlib.import_module(module), name))
    return classes


def test_the_configuration_page_names_every_variable() -> None:
    from plinth.embedded import home, postgres

    page = (ROOT / "docs" / "configuration.md").read_text()
    variables = [
        settings.variable(field)
        for settings in _settings_classes()
        for field in settings.model_fields
    ]
    variables += [home.ENV_DIR, postgres._ENV_SYNCHRONOUS_COMMIT, "TEST_DATABASE_URL"]
    missing = [name for name in variables if f"`{name}`" not in page]
    assert not missing, f"docs/configuration.md does not describe {missing}"


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
        if importlib.util.find_spec(name.split(".")[0]) is None
        or importlib.util.find_spec(name) is None
    ]
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"mkdocs build needs the docs extra ({names}): pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = _run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        ROOT,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "plinth" / "index.html").is_file()
