"""The `plinth` command, through Typer's CliRunner and as a real process."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL
from typer.testing import CliRunner

from plinth.cli import cli
from plinth.testing import served_app

TRANSLATOR = str(Path(__file__).parents[1] / "apps" / "translator")
MAILAGENT = str(Path(__file__).parents[1] / "apps" / "mailagent")
SECRET = "s3cr3t-pa55"
runner = CliRunner()


def plinth(*args: str, url: URL | str | None = None) -> tuple[int, str, str]:
    env = (
        {"DATABASE_URL": url if isinstance(url, str) else url.render_as_string(False)}
        if url
        else {}
    )
    result = runner.invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_current_check_downgrade(scratch_url: URL) -> None:
    assert plinth("db", "current", "--app", TRANSLATOR, url=scratch_url)[1].strip() == "base"
    code, out, err = plinth("db", "upgrade", "--app", TRANSLATOR, url=scratch_url)
    assert code == 0, err
    assert plinth("db", "current", "--app", TRANSLATOR, url=scratch_url)[1].strip() == (
        "0001 (head)"
    )
    code, out, err = plinth("db", "check", "--app", TRANSLATOR, url=scratch_url)
    assert (code, "models match migrations" in out) == (0, True), err
    # As the README's workflow writes it: "-1" is a revision, not an option.
    code, out, err = plinth("db", "downgrade", "-1", "--app", TRANSLATOR, url=scratch_url)
    assert (code, out.strip()) == (0, "translator: downgraded to -1"), err
    assert plinth("db", "current", "--app", TRANSLATOR, url=scratch_url)[1].strip() == "base"
    assert plinth("db", "upgrade", "--app", TRANSLATOR, url=scratch_url)[0] == 0
    assert plinth("db", "downgrade", "base", "--app", TRANSLATOR, url=scratch_url)[0] == 0
    assert plinth("db", "current", "--app", TRANSLATOR, url=scratch_url)[1].strip() == "base"


def test_history_lists_revisions() -> None:
    code, out, _ = plinth("db", "history", "--app", TRANSLATOR)
    assert code == 0
    assert "-> 0001 (head), Initial schema" in out


def test_malformed_url_is_one_line_without_the_password() -> None:
    code, out, err = plinth("db", "current", "--app", TRANSLATOR, url=f"mysql://u:{SECRET}@h/db")
    assert code == 1
    assert err.count("\n") == 1
    assert "DATABASE_URL has scheme 'mysql://'" in err
    assert SECRET not in out + err


def test_unreachable_database_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_CONNECT_RETRIES", "0")
    url = f"postgresql://app:{SECRET}@127.0.0.1:1/app"
    code, out, err = plinth("db", "upgrade", "--app", TRANSLATOR, url=url)
    assert code == 1
    assert "cannot connect to postgresql+asyncpg://app:***@127.0.0.1:1/app" in err
    assert SECRET not in out + err
    assert "Traceback" not in err


def test_not_an_app_directory(tmp_path: Path) -> None:
    code, _, err = plinth("db", "current", "--app", str(tmp_path))
    assert code == 1
    assert "is not a Plinth app" in err


def test_serve_migrates_and_answers_on_the_embedded_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with served_app(TRANSLATOR, env=env) as app:
        ready = httpx.get(f"{app.url}/health/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["migrations"]["at_head"] is True
        assert ready.json()["database"]["server_version"].startswith("18.")
        assert httpx.get(f"{app.url}/docs").status_code == 200
    assert f"serving on {app.url}" in app.output
    assert "embedded PostgreSQL 18" in app.output
    assert app.returncode == 0, app.output


def test_doctor_reports_and_fails_behind_head(scratch_url: URL) -> None:
    code, out, _ = plinth("doctor", "--app", TRANSLATOR, url=scratch_url)
    assert code == 1
    assert "PostgreSQL" in out
    assert "asyncpg" in out
    assert "SUPERUSER" in out
    assert "at base, head 0001" in out


def test_commands_connect_with_the_apps_own_settings(scratch_url: URL) -> None:
    # mailagent's settings default to psycopg: its migrations run on it too.
    code, out, err = plinth("db", "upgrade", "--app", MAILAGENT, url=scratch_url)
    assert code == 0, err
    code, out, _ = plinth("doctor", "--app", MAILAGENT, url=scratch_url)
    assert "psycopg" in out
    assert "asyncpg" not in out
