"""A run's status only moves forward, enforced by the database itself:
queued (0) -> starting (1) -> running (2) -> one terminal status (3)."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

RANK = "CASE {col} WHEN 'queued' THEN 0 WHEN 'starting' THEN 1 WHEN 'running' THEN 2 ELSE 3 END"

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION k8x_run_status_forward() RETURNS trigger AS $$
BEGIN
  IF NEW.status <> OLD.status AND ({RANK.format(col="NEW.status")}) <= ({RANK.format(col="OLD.status")}) THEN
    RAISE EXCEPTION 'run % status may only move forward (% -> %)', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS k8x_run_status_forward ON k8x_core_run;
CREATE TRIGGER k8x_run_status_forward BEFORE UPDATE OF status ON k8x_core_run
  FOR EACH ROW EXECUTE FUNCTION k8x_run_status_forward();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS k8x_run_status_forward ON k8x_core_run;
DROP FUNCTION IF EXISTS k8x_run_status_forward();
"""
SQLITE_CREATE = f"""
CREATE TRIGGER IF NOT EXISTS k8x_run_status_forward BEFORE UPDATE OF status ON k8x_core_run
WHEN NEW.status <> OLD.status AND ({RANK.format(col="NEW.status")}) <= ({RANK.format(col="OLD.status")})
BEGIN SELECT RAISE(ABORT, 'run status may only move forward'); END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS k8x_run_status_forward;"


def _execute(schema_editor: BaseDatabaseSchemaEditor, sql: str) -> None:
    # Without parameters, so the driver leaves the "%" of RAISE alone.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _execute(schema_editor, POSTGRES_CREATE)
    elif vendor == "sqlite":
        _execute(schema_editor, SQLITE_CREATE)
    else:
        raise RuntimeError(f"K8X supports PostgreSQL and SQLite, not {vendor}")


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    _execute(schema_editor, POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [("k8x_core", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
