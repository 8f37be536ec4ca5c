"""Creates the first admin user (once) and says how to log in."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin user if there is none; print the login."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        password_file = Path(settings.K8X_STATE_DIR) / "admin-password"
        if user_model.objects.filter(is_superuser=True).exists():
            where = ""
            if password_file.exists():
                where = f" (its password was printed at first run and is in {password_file})"
            self.stdout.write(f"admin login: admin{where}")
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username="admin", email="", password=password)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self.stdout.write(f"admin login: admin / {password}   (first run; also saved in {password_file})")
