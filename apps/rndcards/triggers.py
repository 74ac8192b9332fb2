"""The ``update_batch_quality_score()`` trigger, as DDL shared by models and migrations.

A batch's ``average_quality_score`` (mean of its projects' scores above 0,
0 when there are none) and ``completed_projects`` (projects with status
``completed``) are kept by the database, so no code path can forget them:

- ``trigger_update_batch_quality`` fires when a project's ``quality_score``,
  ``status`` or ``batch_id`` really changes (``WHEN ... IS DISTINCT FROM``);
- ``trigger_update_batch_quality_rows`` fires when a project is inserted or
  deleted, which changes its batch's figures just as much.

Each helper returns one `DDL` statement, so the initial migration runs
exactly what ``metadata.create_all`` runs (`attach`). Changing the function
later needs a new migration that executes the new `create_function()`.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

__all__ = [
    "FUNCTION",
    "TRIGGERS",
    "attach",
    "create_function",
    "create_triggers",
    "drop_function",
    "drop_triggers",
]

FUNCTION = "update_batch_quality_score"
TRIGGERS = ("trigger_update_batch_quality", "trigger_update_batch_quality_rows")


def _ddl(statement: str) -> DDL:
    return DDL(statement)  # type: ignore[no-untyped-call]


def create_function() -> DDL:
    """The trigger function: recompute the figures of every batch the row touched."""
    return _ddl(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS TRIGGER AS $$\n"
        "DECLARE\n"
        "    touched uuid[];\n"
        "BEGIN\n"
        "    IF TG_OP = 'INSERT' THEN\n"
        "        touched := ARRAY[NEW.batch_id];\n"
        "    ELSIF TG_OP = 'DELETE' THEN\n"
        "        touched := ARRAY[OLD.batch_id];\n"
        "    ELSE\n"
        "        touched := ARRAY[OLD.batch_id, NEW.batch_id];\n"
        "    END IF;\n"
        "    UPDATE batches SET\n"
        "        average_quality_score = COALESCE((\n"
        "            SELECT avg(p.quality_score) FROM projects p\n"
        "            WHERE p.batch_id = batches.id AND p.quality_score > 0\n"
        "        ), 0),\n"
        "        completed_projects = (\n"
        "            SELECT count(*) FROM projects p\n"
        "            WHERE p.batch_id = batches.id AND p.status = 'completed'\n"
        "        )\n"
        "    WHERE batches.id = ANY (touched);\n"
        "    RETURN NULL;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql"
    )


def drop_function() -> DDL:
    """Drop the trigger function (drop the triggers, or their table, first)."""
    return _ddl(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


def create_triggers() -> list[DDL]:
    """The two triggers on ``projects``."""
    return [
        _ddl(
            f"CREATE TRIGGER {TRIGGERS[0]} "
            "AFTER UPDATE OF quality_score, status, batch_id ON projects FOR EACH ROW "
            "WHEN (OLD.quality_score IS DISTINCT FROM NEW.quality_score "
            "OR OLD.status IS DISTINCT FROM NEW.status "
            "OR OLD.batch_id IS DISTINCT FROM NEW.batch_id) "
            f"EXECUTE FUNCTION {FUNCTION}()"
        ),
        _ddl(
            f"CREATE TRIGGER {TRIGGERS[1]} "
            "AFTER INSERT OR DELETE ON projects FOR EACH ROW "
            f"EXECUTE FUNCTION {FUNCTION}()"
        ),
    ]


def drop_triggers() -> list[DDL]:
    """Drop both triggers."""
    return [_ddl(f"DROP TRIGGER IF EXISTS {name} ON projects") for name in TRIGGERS]


def attach(projects: Table) -> None:
    """Make ``metadata.create_all`` create (and ``drop_all`` drop) the function and triggers."""
    metadata = projects.metadata
    event.listen(metadata, "before_create", create_function())
    event.listen(metadata, "after_drop", drop_function())
    for statement in create_triggers():
        event.listen(projects, "after_create", statement)
