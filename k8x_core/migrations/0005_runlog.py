# Run logs move from Run.log (one text rewritten on every append) to RunLog
# chunks (appended). Every existing log becomes one chunk, then Run.log goes.

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def logs_to_chunks(apps: Any, schema_editor: Any) -> None:
    Run = apps.get_model("k8x_core", "Run")
    RunLog = apps.get_model("k8x_core", "RunLog")
    batch: list[Any] = []
    for run_id, text in Run.objects.exclude(log="").values_list("id", "log").iterator(chunk_size=100):
        batch.append(RunLog(run_id=run_id, text=text, bytes=len(text.encode())))
        if len(batch) >= 100:
            RunLog.objects.bulk_create(batch)
            batch = []
    RunLog.objects.bulk_create(batch)


def chunks_to_logs(apps: Any, schema_editor: Any) -> None:
    Run = apps.get_model("k8x_core", "Run")
    RunLog = apps.get_model("k8x_core", "RunLog")
    for run_id in RunLog.objects.values_list("run_id", flat=True).distinct().iterator():
        text = "".join(RunLog.objects.filter(run_id=run_id).order_by("id").values_list("text", flat=True))
        Run.objects.filter(pk=run_id).update(log=text)


class Migration(migrations.Migration):
    dependencies = [
        ("k8x_core", "0004_event_dedup_per_project"),
    ]

    operations = [
        migrations.CreateModel(
            name="RunLog",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("text", models.TextField()),
                ("bytes", models.PositiveIntegerField()),
                (
                    "run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log_chunks",
                        to="k8x_core.run",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["run", "id"], name="runlog_run_id")],
            },
        ),
        migrations.RunPython(logs_to_chunks, chunks_to_logs),
        migrations.RemoveField(
            model_name="run",
            name="log",
        ),
    ]
