"""``plinth db lint``: find migrations that lock a busy table or break running code.

Each revision's upgrade is rendered to SQL in Alembic's offline mode (no
database needed) and checked by squawk (the ``squawk-cli`` package, from the
``lint`` extra), a PostgreSQL migration linter: an index built without
CONCURRENTLY, a NOT NULL column without a default, a column type change, a
foreign key or check validated under lock (no NOT VALID), renames and drops,
no ``lock_timeout``, and squawk's other lock rules. The SQL is checked as
``plinth db upgrade`` runs it, after the session's ``SET lock_timeout`` (see
`plinth.migrations.guard`), so ``require-lock-timeout`` fires only when that
is switched off.

Statements on a table created in the same revision are exempt: nobody else
can hold a lock on it yet. A finding is acknowledged by a comment anywhere in
the revision's file, ``# plinth: allow <rule>[, <rule>...]``, with the reason
after it; acknowledged findings are listed but do not fail the lint.

Rules that are style rather than safety for Alembic's output (SERIAL ids,
VARCHAR(n), statements without IF NOT EXISTS, which a per-revision
transaction makes unnecessary) are left out: see `IGNORED`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.script import Script
from alembic.util.exc import CommandError

from plinth.errors import ConfigurationError, MigrationError
from plinth.migrations.config import alembic_config, load_scripts
from plinth.migrations.guard import MigrationSettings

__all__ = ["IGNORED", "SAFE_ALTERNATIVES", "Finding", "lint", "split_statements"]

IGNORED = (
    "prefer-robust-stmts",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
    "ban-char-field",
    "require-statement-timeout",
    "require-enum-value-ordering",
)
"""squawk rules that are style, not lock safety, for Alembic's SQL (appending an
enum value is what ``ALTER TYPE ... ADD VALUE`` is for)."""

_LATER = "in a later revision, once the deployed code no longer needs the old shape"
SAFE_ALTERNATIVES = {
    "require-concurrent-index-creation": (
        "build it without blocking writes: `with op.get_context().autocommit_block(): "
        "op.create_index(..., postgresql_concurrently=True)`"
    ),
    "require-concurrent-index-deletion": (
        "`with op.get_context().autocommit_block(): "
        "op.drop_index(..., postgresql_concurrently=True)`"
    ),
    "ban-concurrent-index-creation-in-transaction": (
        "CONCURRENTLY cannot run in a transaction: wrap it in "
        "`with op.get_context().autocommit_block():`"
    ),
    "adding-required-field": (
        "add the column nullable (or with a constant server_default), backfill it, then "
        "`CHECK (col IS NOT NULL) NOT VALID`, VALIDATE it and SET NOT NULL " + _LATER
    ),
    "adding-not-nullable-field": (
        "add a CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in another revision, then SET "
        "NOT NULL (PostgreSQL uses the validated check instead of scanning the table)"
    ),
    "changing-column-type": (
        "add a column of the new type, backfill it, switch the code over, and drop the old "
        "column " + _LATER
    ),
    "constraint-missing-not-valid": (
        "add it NOT VALID (`postgresql_not_valid=True`, or `op.execute(... NOT VALID)`) and "
        "`ALTER TABLE ... VALIDATE CONSTRAINT` in the next revision"
    ),
    "adding-foreign-key-constraint": (
        "add the foreign key NOT VALID, then `VALIDATE CONSTRAINT` in the next revision "
        "(validation takes a lock that lets writes through)"
    ),
    "disallowed-unique-constraint": (
        "`CREATE UNIQUE INDEX CONCURRENTLY`, then `ADD CONSTRAINT ... UNIQUE USING INDEX`"
    ),
    "renaming-column": (
        "add the new column, write both, backfill, move reads over, drop the old one " + _LATER
    ),
    "renaming-table": "create a view under the old name while the code moves over, or expand "
    "and contract as for a column",
    "ban-drop-column": "stop reading and writing it first, then drop it " + _LATER,
    "ban-drop-table": "stop using it first, then drop it " + _LATER,
    "ban-drop-not-null": "make sure no deployed code relies on the column being set",
    "require-lock-timeout": (
        "keep DB_MIGRATION_LOCK_TIMEOUT above 0 (plinth db upgrade then sets lock_timeout), "
        "or `op.execute(\"SET lock_timeout = '5s'\")` first"
    ),
}
"""What to do instead, by squawk rule; other rules use squawk's own help."""

_ALLOW = re.compile(r"#\s*plinth:\s*allow\s+([\w\-]+(?:\s*,\s*[\w\-]+)*)", re.IGNORECASE)
_NAME = r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)'
_CREATED = re.compile(
    rf"^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}", re.IGNORECASE
)
_TARGET = re.compile(
    r"^\s*(?:ALTER\s+TABLE(?:\s+IF\s+EXISTS)?(?:\s+ONLY)?"
    r"|CREATE\s+(?:UNLOGGED\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|DROP\s+TABLE(?:\s+IF\s+EXISTS)?"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX(?:\s+CONCURRENTLY)?(?:\s+IF\s+NOT\s+EXISTS)?"
    rf"(?:\s+{_NAME})?\s+ON(?:\s+ONLY)?)\s+{_NAME}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One dangerous statement in one revision."""

    revision: str
    path: str
    statement: str
    rule: str
    message: str
    alternative: str
    allowed: bool = False

    def __str__(self) -> str:
        state = " (allowed in the revision file)" if self.allowed else ""
        return (
            f"{self.revision} ({Path(self.path).name}): {self.rule}{state}\n"
            f"    {' '.join(self.statement.split())}\n"
            f"    why: {self.message}\n"
            f"    instead: {self.alternative}"
        )


def split_statements(sql: str) -> list[str]:
    """Split SQL on semicolons outside quotes, dollar quotes and comments."""
    statements: list[str] = []
    start = index = 0
    while index < len(sql):
        char = sql[index]
        if char == "'":
            index = sql.find("'", index + 1)
            index = len(sql) if index < 0 else index
        elif char == "-" and sql.startswith("--", index):
            index = sql.find("\n", index)
            index = len(sql) if index < 0 else index
        elif char == "$" and (tag := re.match(r"\$[A-Za-z_]*\$", sql[index:])):
            end = sql.find(tag.group(), index + len(tag.group()))
            index = len(sql) if end < 0 else end + len(tag.group()) - 1
        elif char == ";":
            statements.append(sql[start:index])
            start = index + 1
        index += 1
    statements.append(sql[start:])
    return [s for s in (_strip_comments(s) for s in statements) if s]


def _strip_comments(statement: str) -> str:
    lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


def _table(name: str) -> str:
    return name.split(".")[-1].strip('"').lower()


def _target(statement: str) -> str | None:
    match = _TARGET.match(statement)
    return _table(match.group(2)) if match else None


def _render(migrations: Path, revision: Script) -> str:
    config = alembic_config(migrations)
    config.output_buffer = buffer = io.StringIO()
    down = revision.down_revision
    if down is None:
        span = revision.revision
    else:
        first = down if isinstance(down, str) else down[0]
        span = f"{first}:{revision.revision}"
    try:
        command.upgrade(config, span, sql=True)
    except CommandError as exc:
        raise MigrationError(f"cannot render revision {revision.revision} as SQL: {exc}") from exc
    return buffer.getvalue()


@dataclass(frozen=True)
class _Revision:
    script: Script
    statements: list[str]
    created: set[str]
    allowed: set[str]


def _prepare(migrations: Path, revision: Script) -> _Revision:
    statements = [
        s for s in split_statements(_render(migrations, revision)) if "alembic_version" not in s
    ]
    created = {_table(m.group(1)) for s in statements if (m := _CREATED.match(s))}
    source = Path(revision.path).read_text()
    allowed = {
        rule.strip().lower()
        for match in _ALLOW.finditer(source)
        for rule in match.group(1).split(",")
    }
    return _Revision(revision, statements, created, allowed)


def _squawk(files: dict[Path, _Revision]) -> list[dict[str, object]]:
    # The wheel installs the binary beside the interpreter, which may not be on PATH.
    binary = shutil.which("squawk", path=sysconfig.get_path("scripts")) or shutil.which("squawk")
    if binary is None:
        raise ConfigurationError(
            "plinth db lint needs squawk: pip install 'plinth[lint]' (the squawk-cli package)"
        )
    arguments = [binary, "--reporter", "json", "--exclude", ",".join(IGNORED)]
    result = subprocess.run(
        [*arguments, *map(str, files)], capture_output=True, text=True, check=False
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise MigrationError(f"squawk failed: {result.stderr.strip() or result.stdout.strip()}")
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


def _session_prelude(settings: MigrationSettings) -> list[str]:
    prelude = []
    if settings.lock_timeout:
        prelude.append(f"SET lock_timeout = '{settings.lock_timeout}ms'")
    if settings.statement_timeout:
        prelude.append(f"SET statement_timeout = '{settings.statement_timeout}ms'")
    return prelude


def lint(migrations: Path, settings: MigrationSettings | None = None) -> list[Finding]:
    """The findings for every revision, base to head (acknowledged ones included)."""
    settings = settings if settings is not None else MigrationSettings.load()
    script = load_scripts(migrations)
    revisions = [_prepare(migrations, r) for r in reversed(list(script.walk_revisions()))]
    prelude = _session_prelude(settings)
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="plinth-lint-") as folder:
        files: dict[Path, _Revision] = {}
        lines: dict[Path, list[int]] = {}
        for number, revision in enumerate(revisions):
            statements = [*prelude, *revision.statements]
            path = Path(folder) / f"{number:04d}.sql"
            path.write_text("".join(f"{s};\n" for s in statements))
            files[path] = revision
            # The line each statement starts on, for mapping squawk's positions back.
            starts, line = [], 0
            for statement in statements:
                starts.append(line)
                line += statement.count("\n") + 1
            lines[path] = starts
        raw = _squawk(files) if files else []
        for item in raw:
            path = Path(str(item["file"]))
            revision = files[path]
            starts = lines[path]
            position = int(str(item["line"]))
            index = max(i for i, start in enumerate(starts) if start <= position)
            statement = [*prelude, *revision.statements][index]
            if _target(statement) in revision.created:
                continue
            rule = str(item["rule_name"])
            message = str(item["message"])
            help_text = str(item.get("help") or "see https://squawkhq.com/docs/" + rule)
            findings.append(
                Finding(
                    revision=revision.script.revision,
                    path=revision.script.path,
                    statement=statement,
                    rule=rule,
                    message=message,
                    alternative=SAFE_ALTERNATIVES.get(rule, help_text),
                    allowed=rule in revision.allowed,
                )
            )
    order = {r.script.revision: n for n, r in enumerate(revisions)}
    return sorted(findings, key=lambda f: order[f.revision])
