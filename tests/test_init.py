"""`plinth init`: refusals, and one embedded database for every entry point.

The whole way from `plinth init` to `plinth serve` runs in tests/test_readme.py,
exactly as the README writes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_init_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = run([str(BIN / "plinth"), "init", str(tmp_path)], tmp_path, dict(os.environ))
    assert result.returncode == 1
    assert "is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name", ["class", "9lives", "my-app"])
def test_init_refuses_a_package_name_python_cannot_import(tmp_path: Path, name: str) -> None:
    result = run(
        [str(BIN / "plinth"), "init", str(tmp_path / "new"), "--name", name],
        tmp_path,
        dict(os.environ),
    )
    assert result.returncode == 1
    assert "is not a valid Python package name" in result.stderr
    assert not (tmp_path / "new").exists()


def test_every_entry_point_finds_one_embedded_database(tmp_path: Path) -> None:
    """`plinth`, the plain `alembic` command and pytest: one server, the app's database."""
    from plinth.embedded import embedded_data_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST"))}
    env.pop("PLINTH_EMBEDDED_DIR", None)
    project = tmp_path / "notes-service"
    assert run([str(BIN / "plinth"), "init", str(project)], tmp_path, env).returncode == 0
    app = project / "notes_service"
    data_dir = embedded_data_dir(project)
    assert embedded_data_dir(app) == embedded_data_dir(app / "migrations") == data_dir
    try:
        revised = run(
            [str(BIN / "plinth"), "db", "revision", "-m", "notes", "--app", "notes_service"],
            project,
            env,
        )
        assert revised.returncode == 0, revised.stderr
        assert f"(data: {data_dir})" in revised.stderr
        (revision,) = (app / "migrations" / "versions").glob("*_notes.py")
        rev_id = revision.name.split("_")[1]
        # From inside the app's directory, as someone might run it.
        upgraded = run([str(BIN / "plinth"), "db", "upgrade", "--app", "."], app, env)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"(data: {data_dir})" in upgraded.stderr
        # The plain alembic command, through the generated alembic.ini and env.py.
        current = run([str(BIN / "alembic"), "current"], project, env)
        assert current.returncode == 0, current.stderr
        assert f"{rev_id} (head)" in current.stdout
        tested = run([str(BIN / "pytest"), "-p", "no:cacheprovider", "-q", "-s"], project, env)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert f"(data: {data_dir})" in tested.stdout + tested.stderr
    finally:
        # The last user stopped the server; this test's cluster goes with its project.
        shutil.rmtree(data_dir.parent, ignore_errors=True)
