# Duplicates are recognised per project: (source, ce_id, project) instead of
# (source, ce_id), so one project's event never pre-empts another's.
# COALESCE(project_id, 0): events without a project still share one key.

import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('k8x_core', '0003_run_event_cascade'),
    ]

    operations = [
        # The new guard first (the old one implies it), so there is no moment without one.
        migrations.AddConstraint(
            model_name='event',
            constraint=models.UniqueConstraint(models.F('source'), models.F('ce_id'), django.db.models.functions.comparison.Coalesce(models.F('project'), models.Value(0)), condition=models.Q(('outcome__in', ['matched', 'unmatched'])), name='event_unique_project_source_id'),
        ),
        migrations.RemoveConstraint(
            model_name='event',
            name='event_unique_source_id',
        ),
    ]
