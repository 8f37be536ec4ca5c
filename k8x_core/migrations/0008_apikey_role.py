# API keys get a role in their project (issue 15: the management API).
# Existing keys become "user": least privilege; an owner re-creates a key to give it more.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("k8x_core", "0007_project_security"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="role",
            field=models.CharField(
                choices=[("owner", "owner"), ("admin", "admin"), ("user", "user")], default="user", max_length=10
            ),
        ),
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["owner", "admin", "user"])), name="apikey_role_valid"
            ),
        ),
    ]
