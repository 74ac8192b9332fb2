"""`plinth.migrations.lint` on fixture migrations: squawk's findings, mapped back to revisions."""

from __future__ import annotations

from pathlib import Path

from plinth.migrations.guard import MigrationSettings
from plinth.migrations.lint import lint, split_statements
from plinth.project import find_app

APPS = Path(__file__).parent / "fixtures" / "migration_apps"


def test_statements_split_outside_quotes_and_function_bodies() -> None:
    sql = (
        "-- Running upgrade\nCREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n"
        "  NEW.x = 'a;b';\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n\n"
        "DO $plinth$ BEGIN PERFORM 1; END $plinth$;\nSELECT 'it''s; fine';\n"
    )
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[0].startswith("CREATE FUNCTION f()")
    assert statements[0].endswith("$$ LANGUAGE plpgsql")
    assert statements[2] == "SELECT 'it''s; fine'"


def test_each_finding_names_revision_statement_rule_and_alternative() -> None:
    findings = lint(find_app(APPS / "kit_unsafe").migrations, MigrationSettings())
    first = findings[0]
    assert (first.revision, Path(first.path).name) == ("0002", "0002_name_index.py")
    assert first.statement == "CREATE INDEX ix_accounts_name ON accounts (name)"
    assert first.rule == "require-concurrent-index-creation"
    assert "autocommit_block" in first.alternative
    assert "table updates are blocked" in first.message


def test_new_tables_are_exempt_and_acknowledged_findings_are_marked() -> None:
    findings = lint(find_app(APPS / "kit_unsafe").migrations, MigrationSettings())
    assert {f.revision for f in findings} == {"0002", "0003", "0004"}
    allowed = [f for f in findings if f.allowed]
    assert [(f.revision, f.rule) for f in allowed] == [("0004", "ban-drop-column")]
    assert allowed[0].statement == "ALTER TABLE accounts DROP COLUMN legacy"


def test_missing_lock_timeout_is_reported_when_plinth_sets_none() -> None:
    settings = MigrationSettings(lock_timeout=0)
    findings = lint(find_app(APPS / "kit_unsafe").migrations, settings)
    missing = [f for f in findings if f.rule == "require-lock-timeout"]
    assert missing, findings
    assert "DB_MIGRATION_LOCK_TIMEOUT" in missing[0].alternative
