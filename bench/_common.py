"""What every benchmark shares: importing this module sets the environment a
benchmark runs in (repository on sys.path, settings, a benchmark database, keys
of its own); ``django_ready()`` creates and migrates that database and sets
Django up; ``pct`` is the percentile every table prints."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import environ
import psycopg
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "k8x.settings")
os.environ.setdefault("DATABASE_URL", "postgres://k8x:k8x@127.0.0.1:55432/k8x_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("K8X_RATE_LIMIT_PER_MINUTE", "100000000")
# Production settings refuse the development keys; a benchmark gets keys of its own.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("K8X_SECRETS_KEY", Fernet.generate_key().decode())


def ensure_database() -> None:
    """Create the benchmark database if it is missing."""
    cfg = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    conn_args = {"user": cfg["USER"], "password": cfg["PASSWORD"], "host": cfg["HOST"], "port": cfg["PORT"]}
    try:
        psycopg.connect(dbname=cfg["NAME"], **conn_args).close()
    except psycopg.OperationalError:
        with psycopg.connect(dbname="postgres", autocommit=True, **conn_args) as conn:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def django_ready() -> None:
    """The benchmark database, migrated, and Django set up."""
    # Imported here: Django must not be imported before the environment above is set.
    import django
    from django.core.management import call_command

    ensure_database()
    django.setup()
    call_command("migrate", verbosity=0)


def proc_status_mb(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` size field (VmRSS, VmHWM...) in MB; NaN when
    the process (or the field) is gone, so a vanished process never reads as 0."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (utime + stime from ``/proc/<pid>/stat``); NaN when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def namespace_cleanup(name: str) -> None:
    """Delete a benchmark's namespace. K8X's own identity may not delete namespaces:
    with K8X_TEST_ADMIN_KUBECONFIG set (as for the tests) the cluster admin does."""
    # Imported here: Django is set up by django_ready(), after this module is imported.
    from django.conf import settings

    from k8x_core import kube

    admin = os.environ.get("K8X_TEST_ADMIN_KUBECONFIG")
    if admin:
        settings.KUBECONFIG = admin
        kube.api_client_reset()
    try:
        kube.namespace_delete(name=name)
    except kube.KubeError as exc:
        print(f"namespace {name} not deleted: {exc}", file=sys.stderr)
