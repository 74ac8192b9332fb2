"""``plinth db check | lint | reset`` and migration failures, through Typer's CliRunner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import URL
from typer.testing import CliRunner

from plinth.cli import cli

APPS = Path(__file__).parent / "fixtures" / "migration_apps"
TRANSLATOR = Path(__file__).parents[1] / "apps" / "translator"
SECRET = "s3cr3t-pa55"
runner = CliRunner()


def plinth(*args: str | Path, url: URL | str | None = None, **env: str) -> tuple[int, str, str]:
    if url is not None:
        env["DATABASE_URL"] = url if isinstance(url, str) else url.render_as_string(False)
    result = runner.invoke(cli, [str(arg) for arg in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def sql(url: URL, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as connection:
        cursor = connection.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def with_password(url: URL) -> URL:
    # The test servers trust local connections: any password is accepted, and must not leak.
    return url.set(password=SECRET)


# -- check --------------------------------------------------------------------


def test_check_passes_for_matching_models(plinth_server: URL) -> None:
    code, out, err = plinth("db", "check", "--app", APPS / "kit_enum", url=plinth_server)
    assert code == 0, err
    assert "kit_enum: one head (0002), models match migrations" in out


def test_check_prints_the_operations_and_catalog_differences(plinth_server: URL) -> None:
    code, _, err = plinth("db", "check", "--app", APPS / "kit_drift", url=plinth_server)
    assert code == 1
    assert "kit_drift: the models differ from the migrations." in err
    assert "op.add_column('things', sa.Column('color'" in err
    assert "trigger public.things.update_things_updated_at is only in models" in err


def test_check_fails_on_two_heads_in_one_line() -> None:
    code, _, err = plinth("db", "check", "--app", APPS / "kit_two_heads")
    assert code == 1
    assert err.strip() == "error: kit_two_heads: expected one head, found 2: 0002a, 0002b"


def test_check_does_not_touch_the_database(scratch_url: URL) -> None:
    assert plinth("db", "check", "--app", TRANSLATOR, url=scratch_url)[0] == 0
    tables = sql(scratch_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == []


# -- lint ---------------------------------------------------------------------


def test_lint_reports_each_unsafe_operation() -> None:
    code, out, err = plinth("db", "lint", "--app", APPS / "kit_unsafe")
    assert code == 1
    rules = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith("000")]
    assert rules == [
        "require-concurrent-index-creation",
        "adding-required-field",
        "changing-column-type",
        "constraint-missing-not-valid",
        "adding-foreign-key-constraint",
        "constraint-missing-not-valid",
        "renaming-column",
        "require-concurrent-index-deletion",
        "require-concurrent-index-creation",
    ]
    assert (
        "0002 (0002_name_index.py): require-concurrent-index-creation\n"
        "    CREATE INDEX ix_accounts_name ON accounts (name)\n"
        "    why: During normal index creation, table updates are blocked"
    ) in err
    assert "postgresql_concurrently=True" in err
    assert "ALTER TABLE accounts ALTER COLUMN balance TYPE BIGINT" in err
    assert "0004 (0004_rename.py): ban-drop-column (allowed in the revision file)" in out
    assert "kit_unsafe: 9 unsafe operation(s)" in err
    # 0001 creates its tables and indexes them: exempt. 0005 builds its index CONCURRENTLY.
    assert "0001 (" not in out + err
    assert "0005 (" not in out + err


def test_lint_flags_a_missing_lock_timeout_only_when_plinth_sets_none() -> None:
    assert "require-lock-timeout" not in "".join(
        plinth("db", "lint", "--app", APPS / "kit_unsafe")[1:]
    )
    _, _, err = plinth("db", "lint", "--app", APPS / "kit_unsafe", DB_MIGRATION_LOCK_TIMEOUT="0")
    assert "require-lock-timeout" in err


def test_lint_passes_safe_migrations() -> None:
    for app in (TRANSLATOR, APPS / "kit_enum"):
        code, out, err = plinth("db", "lint", "--app", app)
        assert (code, err) == (0, "")
        assert "no unsafe operations" in out


# -- reset --------------------------------------------------------------------


def test_reset_downgrades_to_base_and_upgrades_to_head(scratch_url: URL) -> None:
    app = APPS / "kit_enum"
    assert plinth("db", "upgrade", "--app", app, url=scratch_url)[0] == 0
    sql(scratch_url, "INSERT INTO cards (id, title) VALUES (1, 'lost on reset')")
    code, out, err = plinth("db", "reset", "--app", app, url=scratch_url)
    assert code == 0, err
    assert "kit_enum: reset (downgraded to base, upgraded to head)" in out
    assert sql(scratch_url, "SELECT count(*) FROM cards") == [(0,)]
    assert sql(scratch_url, "SELECT version_num FROM alembic_version") == [("0002",)]


def test_reset_refuses_in_production(scratch_url: URL) -> None:
    app = APPS / "kit_enum"
    assert plinth("db", "upgrade", "--app", app, url=scratch_url)[0] == 0
    sql(scratch_url, "INSERT INTO cards (id, title) VALUES (1, 'kept')")
    production = with_password(scratch_url).update_query_dict({"sslmode": "require"})
    code, out, err = plinth("db", "reset", "--app", app, url=production, APP_ENV="production")
    assert code == 1
    assert err.startswith("error: refusing to reset a production database (APP_ENV=production)")
    assert "--yes-really" in err
    assert sql(scratch_url, "SELECT count(*) FROM cards") == [(1,)]
    # With --yes-really it goes on to connect (and the test server has no SSL).
    code, out, err = plinth(
        "db", "reset", "--app", app, "--yes-really", url=production, APP_ENV="production"
    )
    assert "refusing" not in err
    assert SECRET not in out + err


# -- bad input ----------------------------------------------------------------


def test_a_migration_failing_halfway_says_which_and_why(scratch_url: URL) -> None:
    app = APPS / "kit_halfway"
    code, out, err = plinth("db", "upgrade", "--app", app, url=with_password(scratch_url))
    assert code == 1
    assert err == (
        "error: upgrade to 'head' failed in revision 0002 ('Scores, filled by an UPDATE with "
        'a typo.\', 0002_score.py): column "scroe" of relation "things" does not exist. That '
        "revision's transaction was rolled back: the database is at 0001.\n"
    )
    assert SECRET not in out + err
    assert plinth("db", "current", "--app", app, url=scratch_url)[1].strip() == "0001"
    columns = sql(
        scratch_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'things' ORDER BY 1",
    )
    assert columns == [("id",), ("name",)]


def test_two_heads_on_upgrade_is_one_line(scratch_url: URL) -> None:
    code, _, err = plinth("db", "upgrade", "--app", APPS / "kit_two_heads", url=scratch_url)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("error: upgrade to 'head' failed: Multiple head revisions are present")


def test_a_database_at_an_unknown_revision_is_one_line(scratch_url: URL) -> None:
    app = APPS / "kit_enum"
    assert plinth("db", "upgrade", "--app", app, "0001", url=scratch_url)[0] == 0
    sql(scratch_url, "UPDATE alembic_version SET version_num = '0003'")
    code, _, err = plinth("db", "upgrade", "--app", app, url=scratch_url)
    assert code == 1
    assert err.count("\n") == 1
    assert "Can't locate revision identified by '0003'" in err


def test_a_missing_revision_file_is_one_line(tmp_path: Path, scratch_url: URL) -> None:
    app = tmp_path / "kit_enum"
    shutil.copytree(APPS / "kit_enum", app)
    (app / "migrations" / "versions" / "0001_cards.py").unlink()
    for command in (("upgrade",), ("check",), ("lint",), ("reset",)):
        code, _, err = plinth("db", *command, "--app", app, url=scratch_url)
        assert code == 1, command
        assert err.count("\n") == 1, (command, err)
        assert "0001" in err, (command, err)


@pytest.mark.parametrize("command", ["check", "reset", "upgrade"])
def test_an_unreachable_database_is_one_line(command: str) -> None:
    url = f"postgresql://app:{SECRET}@127.0.0.1:1/app"
    code, out, err = plinth(
        "db", command, "--app", APPS / "kit_enum", url=url, DB_CONNECT_RETRIES="0"
    )
    assert code == 1
    assert err.count("\n") == 1, err
    assert "127.0.0.1:1" in err
    assert SECRET not in out + err


def test_check_without_createdb_says_what_the_role_needs(plinth_server: URL) -> None:
    role = f"plinth_no_createdb_{os.getpid()}"
    sql(plinth_server, f"CREATE ROLE {role} LOGIN")
    try:
        code, _, err = plinth(
            "db", "check", "--app", APPS / "kit_enum", url=plinth_server.set(username=role)
        )
    finally:
        sql(plinth_server, f"DROP ROLE {role}")
    assert code == 1
    assert err.count("\n") == 1, err
    assert "permission denied to create database; the role needs CREATEDB" in err
