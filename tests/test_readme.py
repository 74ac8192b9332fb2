"""The README's examples work as written: its commands run, its Python parses.

The "Start a project" block runs line by line in a directory outside the
repository (on a scratch database of the test server, not a new embedded
cluster); every command of the command-line table answers ``--help``; every
Python block compiles; the two set-up commands of the first screen are the
ones `.ci/run` runs.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from plinth.testing import served_app

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _indented_commands(text: str) -> list[list[str]]:
    """The lines of 4-space-indented blocks, without their trailing comments."""
    lines = [line[4:] for line in text.splitlines() if line.startswith("    ") and line.strip()]
    return [shlex.split(line.split("  #")[0]) for line in lines]


def test_start_a_project_runs_as_written(
    tmp_path: Path, scratch_url: URL, plinth_server: URL
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST"))}
    env["DATABASE_URL"] = scratch_url.render_as_string(hide_password=False)
    cwd = tmp_path
    commands = _indented_commands(_section("Start a project"))
    assert [c[:2] for c in commands] == [
        ["plinth", "init"],
        ["cd", "bookmarks"],
        ["plinth", "db"],
        ["pytest"],
        ["plinth", "serve"],
    ]
    for words in commands:
        match words:
            case ["cd", directory]:
                cwd = cwd / directory
            case ["pytest"]:
                url = plinth_server.render_as_string(hide_password=False)
                args = [str(BIN / "pytest"), "-p", "no:cacheprovider", "--plinth-url", url]
                result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
                assert result.returncode == 0, result.stdout + result.stderr
            case ["plinth", "serve", app]:
                with served_app(app, cwd=cwd, env=env) as served:
                    assert httpx.get(f"{served.url}/docs", timeout=5).status_code == 200
                    created = httpx.post(f"{served.url}/notes", json={"text": "first"})
                    assert created.status_code == 201, created.text
                    note = httpx.get(f"{served.url}/notes/{created.json()['id']}")
                    assert note.json()["text"] == "first"
            case ["plinth", *arguments]:
                result = subprocess.run(
                    [str(BIN / "plinth"), *arguments],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                assert result.returncode == 0, f"{shlex.join(words)}:\n{result.stderr}"
                if arguments[:2] == ["db", "revision"]:
                    (revision,) = (cwd / "bookmarks" / "migrations" / "versions").glob("*.py")
                    assert "op.create_table('notes'" in revision.read_text()
            case _:
                pytest.fail(f"the README runs {shlex.join(words)!r}, which this test cannot run")


TABLE_COMMANDS = re.findall(r"^\| `plinth ((?:db )?[a-z]+)", _section("Command line"), re.M)


def test_the_command_table_names_real_commands() -> None:
    assert len(TABLE_COMMANDS) >= 10
    for command in TABLE_COMMANDS:
        result = subprocess.run(
            [str(BIN / "plinth"), *command.split(), "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0, f"plinth {command} --help:\n{result.stderr}"


def test_every_python_block_compiles() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        ast.parse(block)


def test_the_first_screen_has_the_two_set_up_commands_ci_runs() -> None:
    first_screen = README[: README.index("\n---\n")]
    commands = [line.strip() for line in first_screen.splitlines() if line.startswith("    ")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && "
        ".venv/bin/plinth serve apps/translator",
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -q -e '.[dev]'" in ci
    assert "pytest" in ci
