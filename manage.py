#!/usr/bin/env python
"""Django's command-line utility for K8X."""

import os
import sys

# The long-running background commands (deploy/Procfile) need neither the web
# server nor the console: without them each process is ~30 MB smaller
# (K8X_WEB_APPS in k8x/settings.py).
BACKGROUND_COMMANDS = frozenset({"k8x_hub", "rqworker", "k8x_watch", "k8x_scheduler", "k8x_reconcile"})


def command_env_set(argv: list[str]) -> None:
    """The environment a command's Django set-up reads; an explicit K8X_WEB_APPS wins."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "k8x.settings")
    if len(argv) > 1 and argv[1] in BACKGROUND_COMMANDS:
        os.environ.setdefault("K8X_WEB_APPS", "false")


def main() -> None:
    command_env_set(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
