"""The K8X data model (see shared/PRODUCT.md, "Concepts").

Invariants live in the database (check and unique constraints, and a trigger
that lets a run's status only move forward), so every writer is held to them,
not only the forms.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from k8x_core.crypto import secret_decrypt, secret_encrypt

ENV_NAME_REGEX = r"^[A-Za-z_][A-Za-z0-9_]*$"
DNS_LABEL_REGEX = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Origin(models.TextChoices):
    """Who manages a row: people in the console, or a git/apply deployment."""

    MANUAL = "manual", "manual"
    GIT = "git", "git"


class PodSecurityLevel(models.TextChoices):
    """A project namespace's Pod Security level; never ``privileged``."""

    RESTRICTED = "restricted", "restricted"
    BASELINE = "baseline", "baseline"


class Project(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    namespace = models.CharField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Changed only by a platform superuser (admin site).
    pod_security_level = models.CharField(
        max_length=20, choices=PodSecurityLevel.choices, default=PodSecurityLevel.RESTRICTED
    )
    quota = models.JSONField(
        default=dict, blank=True, help_text='ResourceQuota hard limits over K8X_PROJECT_QUOTA, e.g. {"pods": "20"}.'
    )
    limits = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per-container defaults over K8X_PROJECT_LIMITS, e.g. {"default": {"memory": "512Mi"}}.',
    )
    # Retention overrides (days; empty: the K8X_RETENTION_* default). Set by a superuser.
    retention_runs_days = models.PositiveIntegerField(null=True, blank=True)
    retention_events_days = models.PositiveIntegerField(null=True, blank=True)
    retention_unmatched_events_days = models.PositiveIntegerField(null=True, blank=True)
    retention_audit_days = models.PositiveIntegerField(null=True, blank=True)
    # Run defaults, set by project owners (k8x_core.runs.defaults): resources for
    # containers that set neither requests nor limits, and a timeout (seconds) for
    # services that set none.
    default_resources = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}.'
    )
    default_timeout = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    # Placement, set only by a platform superuser: forced onto / added to every pod.
    node_selector = models.JSONField(
        default=dict, blank=True, help_text='Node labels every pod must run on, e.g. {"k8x.io/pool": "batch"}.'
    )
    tolerations = models.JSONField(
        default=list,
        blank=True,
        help_text='Added to every pod, e.g. [{"key": "pool", "operator": "Equal", "value": "batch", '
        '"effect": "NoSchedule"}].',
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(slug__regex=DNS_LABEL_REGEX), name="project_slug_dns_label"),
            models.CheckConstraint(condition=Q(namespace__regex=DNS_LABEL_REGEX), name="project_namespace_dns_label"),
            models.CheckConstraint(
                condition=Q(pod_security_level__in=PodSecurityLevel.values), name="project_pod_security_level_valid"
            ),
            models.CheckConstraint(
                condition=Q(default_timeout__isnull=True) | Q(default_timeout__gt=0),
                name="project_default_timeout_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.namespace:
            self.namespace = f"{settings.K8X_NAMESPACE}-{self.slug}"[:63]
        if not self.name:
            self.name = self.slug
        super().save(*args, **kwargs)


class Role(models.TextChoices):
    OWNER = "owner", "owner"
    ADMIN = "admin", "admin"
    USER = "user", "user"


ROLE_RANK = {Role.USER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="k8x_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class GitRepository(models.Model):
    class Auth(models.TextChoices):
        NONE = "none", "none (public)"
        SSH = "ssh", "SSH deploy key"
        HTTPS_TOKEN = "https_token", "HTTPS token"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="repositories")
    name = models.SlugField(max_length=63)
    url = models.CharField(max_length=1000)
    branch = models.CharField(max_length=255, default="main")
    path = models.CharField(max_length=500, blank=True, help_text="Sub-directory holding the service directories.")
    auth = models.CharField(max_length=20, choices=Auth.choices, default=Auth.NONE)
    deploy_public_key = models.TextField(blank=True)
    deploy_private_key_encrypted = models.TextField(blank=True, editable=False)
    https_token_encrypted = models.TextField(blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_commit = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "git repositories"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="gitrepo_unique_name")]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


class Service(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=50)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    # Paused: triggers still match and runs are queued, but none is launched
    # until the service is resumed (k8x_core.runs.pause).
    paused = models.BooleanField(default=False)
    allow_manual_triggering = models.BooleanField(default=True)
    # Simple fields ...
    image = models.CharField(max_length=500, blank=True)
    command = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=dict, blank=True)
    # ... or a full batch/v1 Job (or Pod template) in YAML.
    job_template = models.TextField(blank=True)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    schedule = models.CharField(max_length=200, blank=True, help_text="Cron expression (UTC).")
    parameters_schema = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    source_repo = models.ForeignKey(
        GitRepository, null=True, blank=True, on_delete=models.SET_NULL, related_name="services"
    )
    source_commit = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="service_unique_name_per_project"),
            models.CheckConstraint(condition=Q(name__regex=DNS_LABEL_REGEX), name="service_name_dns_label"),
            models.CheckConstraint(condition=~Q(image="") | ~Q(job_template=""), name="service_has_image_or_template"),
            models.CheckConstraint(
                condition=Q(timeout_seconds__isnull=True) | Q(timeout_seconds__gt=0), name="service_timeout_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_concurrency__isnull=True) | Q(max_concurrency__gt=0),
                name="service_concurrency_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


class Trigger(models.Model):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="triggers")
    event_type = models.CharField(max_length=255, help_text="Exact type or glob, e.g. com.acme.order.*")
    source_glob = models.CharField(max_length=512, blank=True)
    cel_expression = models.TextField(blank=True, help_text="CEL over `event`, e.g. event.data.amount > 100")
    active = models.BooleanField(default=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service", "event_type"]
        constraints = [models.CheckConstraint(condition=~Q(event_type=""), name="trigger_event_type_not_empty")]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.service}"


class Scope(models.TextChoices):
    PLATFORM = "platform", "platform"
    PROJECT = "project", "project"
    SERVICE = "service", "service"


class ScopedEntry(models.Model):
    """A key at platform, project or service scope (service > project > platform)."""

    scope = models.CharField(max_length=10, choices=Scope.choices)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(condition=Q(key__regex=ENV_NAME_REGEX), name="%(class)s_key_env_name"),
            # K8X_* variables are the container contract's; no entry may shadow them.
            models.CheckConstraint(condition=~Q(key__startswith="K8X_"), name="%(class)s_key_not_reserved"),
            models.CheckConstraint(
                condition=(Q(scope=Scope.PLATFORM, project__isnull=True, service__isnull=True))
                | (Q(scope=Scope.PROJECT, project__isnull=False, service__isnull=True))
                | (Q(scope=Scope.SERVICE, project__isnull=False, service__isnull=False)),
                name="%(class)s_scope_consistent",
            ),
            models.UniqueConstraint(
                fields=["key"], condition=Q(scope=Scope.PLATFORM), name="%(class)s_unique_platform_key"
            ),
            models.UniqueConstraint(
                fields=["project", "key"], condition=Q(scope=Scope.PROJECT), name="%(class)s_unique_project_key"
            ),
            models.UniqueConstraint(
                fields=["service", "key"], condition=Q(scope=Scope.SERVICE), name="%(class)s_unique_service_key"
            ),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.service_id is not None and self.project_id is None:
            self.project_id = Service.objects.values_list("project_id", flat=True).get(pk=self.service_id)
        super().save(*args, **kwargs)


class Config(ScopedEntry):
    value = models.TextField(blank=True)

    class Meta(ScopedEntry.Meta):
        ordering = ["scope", "key"]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class SecretKind(models.TextChoices):
    """A plain value (an environment variable), or a registry login (an image pull secret)."""

    VALUE = "value", "value"
    REGISTRY = "registry", "registry credentials"


class Secret(ScopedEntry):
    """An encrypted value. Nothing but ``reveal`` ever turns it back into text.

    A ``registry`` secret is a project's login to an image registry: ``server`` is
    plain (shown), the ciphertext holds ``{"username", "password"}`` (never shown),
    and it reaches pods only as the project's image pull secret
    (k8x_core.runs.registry), never as a variable."""

    ciphertext = models.TextField(editable=False)
    kind = models.CharField(max_length=10, choices=SecretKind.choices, default=SecretKind.VALUE)
    server = models.CharField(max_length=255, blank=True, help_text="Registry host, e.g. registry.example.com:5000.")

    class Meta(ScopedEntry.Meta):
        ordering = ["scope", "key"]
        constraints = [
            *ScopedEntry.Meta.constraints,
            models.CheckConstraint(
                condition=Q(kind=SecretKind.VALUE, server="")
                | Q(kind=SecretKind.REGISTRY, scope=Scope.PROJECT) & ~Q(server=""),
                name="secret_kind_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} (secret)"

    def __repr__(self) -> str:
        return f"<Secret {self.scope}:{self.key} ******>"

    def set_value(self, plaintext: str) -> None:
        self.ciphertext = secret_encrypt(plaintext=plaintext)

    def reveal(self) -> str:
        return secret_decrypt(ciphertext=self.ciphertext)


class EventOutcome(models.TextChoices):
    MATCHED = "matched", "matched"
    UNMATCHED = "unmatched", "unmatched"
    DUPLICATE = "duplicate", "duplicate"
    REJECTED = "rejected", "rejected"


class Event(models.Model):
    """A CloudEvent as received, with its outcome."""

    ce_id = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=512, blank=True)
    type = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=512, blank=True)
    time = models.DateTimeField(null=True, blank=True)
    datacontenttype = models.CharField(max_length=255, blank=True)
    # The whole event in structured JSON form (attributes, extensions, data).
    payload = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=EventOutcome.choices)
    reason = models.TextField(blank=True)
    # Set when the event came through a project's API key, webhook or run
    # token: such an event may only trigger that project's services.
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kafka_topic = models.CharField(max_length=255, blank=True)
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # Redelivery is recognised by project + source + id (one
            # project's event never pre-empts another's); duplicates and
            # rejects are recorded beside the original, outside the guard.
            # COALESCE: events without a project share one key (NULLs would
            # be distinct in a unique index), on PostgreSQL and SQLite alike.
            # Matched events only: an unmatched event is a bounded sample
            # (k8x_core.hub.unmatched), recorded beside the guard like
            # duplicates and rejects; its redelivery creates no run.
            models.UniqueConstraint(
                F("source"),
                F("ce_id"),
                Coalesce(F("project"), Value(0)),
                condition=Q(outcome=EventOutcome.MATCHED),
                name="event_unique_project_source_id",
            ),
            models.CheckConstraint(condition=Q(outcome__in=EventOutcome.values), name="event_outcome_valid"),
            models.CheckConstraint(
                condition=Q(outcome=EventOutcome.REJECTED) | (~Q(ce_id="") & ~Q(source="") & ~Q(type="")),
                name="event_attributes_present_unless_rejected",
            ),
        ]
        indexes = [
            models.Index(fields=["type", "-received_at"], name="event_type_time"),
            models.Index(fields=["outcome", "-received_at"], name="event_outcome_time"),
            models.Index(fields=["-received_at"], name="event_time"),
            models.Index(fields=["project", "-received_at"], name="event_project_time"),
            # The hub prunes the unmatched sample per (type, project) newest first.
            models.Index(
                fields=["type", "project", "-id"],
                condition=Q(outcome=EventOutcome.UNMATCHED),
                name="event_unmatched_sample",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.source}#{self.ce_id} ({self.outcome})"


class UnmatchedCount(models.Model):
    """Unmatched events counted per (project, type): the hub keeps only a
    sample of them as Event rows (k8x_core.hub.unmatched) and adds here once
    per batch."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=255)
    count = models.BigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(Coalesce(F("project"), Value(0)), F("type"), name="unmatchedcount_project_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} in {self.project_id}: {self.count} unmatched"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    STARTING = "starting", "starting"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    TIMED_OUT = "timed_out", "timed out"
    CANCELLED = "cancelled", "cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({RunStatus.STARTING, RunStatus.RUNNING})
# The database trigger in migration 0002 uses the same ranks.
STATUS_RANK = {
    RunStatus.QUEUED: 0,
    RunStatus.STARTING: 1,
    RunStatus.RUNNING: 2,
    RunStatus.SUCCEEDED: 3,
    RunStatus.FAILED: 3,
    RunStatus.TIMED_OUT: 3,
    RunStatus.CANCELLED: 3,
}


class TriggerKind(models.TextChoices):
    EVENT = "event", "event"
    MANUAL = "manual", "manual"
    SCHEDULE = "schedule", "schedule"
    RETRY = "retry", "retry"


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="runs")
    # CASCADE: an event-triggered run cannot exist without its event (a
    # check constraint), so retention deletes both together.
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    trigger_kind = models.CharField(max_length=10, choices=TriggerKind.choices, default=TriggerKind.EVENT)
    correlation_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    params = models.JSONField(null=True, blank=True, help_text="Manual-run form values.")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job_name = models.CharField(max_length=63, blank=True)
    pod_name = models.CharField(max_length=253, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The log itself is in RunLog chunks (appended, never rewritten), so loading a run never loads it.
    log_truncated = models.BooleanField(default=False)
    # Set once when a bulk re-drive claimed this failed run, so a second re-drive skips it.
    redriven_at = models.DateTimeField(null=True, blank=True)
    # Set in the transaction that ends the run when a notification rule wants it, cleared once its
    # deliveries exist: a notifications job lost with Redis is enqueued again by the reconciler.
    notify_pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Exactly one run per (event, service) for event-triggered runs.
            models.UniqueConstraint(
                fields=["event", "service"],
                condition=Q(trigger_kind=TriggerKind.EVENT),
                name="run_unique_event_service",
            ),
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="run_status_valid"),
            models.CheckConstraint(condition=Q(trigger_kind__in=TriggerKind.values), name="run_trigger_kind_valid"),
            models.CheckConstraint(
                condition=~Q(trigger_kind=TriggerKind.EVENT) | Q(event__isnull=False),
                name="run_event_trigger_has_event",
            ),
        ]
        indexes = [
            models.Index(fields=["service", "-created_at"], name="run_service_time"),
            models.Index(fields=["status", "-created_at"], name="run_status_time"),
            models.Index(fields=["-created_at"], name="run_time"),
            models.Index(fields=["correlation_id", "created_at"], name="run_correlation_time"),
            models.Index(fields=["service", "status", "created_at"], name="run_service_status_time"),
            models.Index(fields=["finished_at"], condition=Q(notify_pending=True), name="run_notify_pending"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of {self.service_id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunLog(models.Model):
    """One chunk of a run's stored log. A run's log is its chunks' text in ``id`` order
    (k8x_core.runs.logs): following a pod appends a chunk per flush (an INSERT, never a
    rewrite of what is stored), and the final log replaces them when the run ends."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: runlog_run_id (run, id) serves it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_chunks", db_index=False)
    text = models.TextField()
    # UTF-8 size of ``text``: the cap is checked on the sum without reading the text.
    bytes = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["run", "id"], name="runlog_run_id")]

    def __str__(self) -> str:
        return f"log chunk {self.id} of run {self.run_id} ({self.bytes} bytes)"


def run_job_name(run_id: uuid.UUID | str) -> str:
    """The deterministic Job name of a run: a second create is a 409."""
    return f"k8x-run-{uuid.UUID(str(run_id)).hex}"


class ApiKey(models.Model):
    """An API key scoped to one project. Only its SHA-256 is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    # What the key may do in its project (the console's roles); least privilege by default.
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "name"]
        verbose_name = "API key"
        constraints = [models.CheckConstraint(condition=Q(role__in=Role.values), name="apikey_role_valid")]

    def __str__(self) -> str:
        return f"{self.project}/{self.name} ({self.prefix}…)"


class Webhook(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200, blank=True)
    event_type = models.CharField(max_length=255)
    event_source = models.CharField(max_length=512, blank=True)
    secret_ciphertext = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "slug"]

    def __str__(self) -> str:
        return self.slug

    def __repr__(self) -> str:
        return f"<Webhook {self.slug} secret=******>"

    def set_secret(self, plaintext: str) -> None:
        self.secret_ciphertext = secret_encrypt(plaintext=plaintext)

    def reveal_secret(self) -> str:
        return secret_decrypt(ciphertext=self.secret_ciphertext)


class ScheduleTick(models.Model):
    """One due time of a service's cron schedule, claimed by exactly one scheduler."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="schedule_ticks")
    due_at = models.DateTimeField()
    event_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "due_at"], name="scheduletick_unique_due")]

    def __str__(self) -> str:
        return f"{self.service} @ {self.due_at.isoformat()}"


class SyncRecord(models.Model):
    """One git sync or k8x_apply: who, when, which commit, what changed."""

    class Status(models.TextChoices):
        APPLIED = "applied", "applied"
        FAILED = "failed", "failed"
        DRY_RUN = "dry_run", "dry run"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="syncs")
    repository = models.ForeignKey(GitRepository, null=True, blank=True, on_delete=models.CASCADE, related_name="syncs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=1000, blank=True, help_text="Repository URL or local directory.")
    commit = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    changes = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.project} {self.status} {self.commit[:12] or self.source}"


class NotifyChannel(models.TextChoices):
    WEBHOOK = "webhook", "webhook"
    EMAIL = "email", "e-mail"


class NotificationRule(models.Model):
    """Tell a webhook or e-mail addresses when runs of a project (or of one of
    its services) fail, time out or succeed again after a failure."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notification_rules")
    # None: every service of the project.
    service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_rules"
    )
    name = models.CharField(max_length=100)
    on_failed = models.BooleanField(default=True)
    on_timed_out = models.BooleanField(default=True)
    on_recovered = models.BooleanField(default=False, help_text="Succeeded after the previous run failed.")
    channel = models.CharField(max_length=10, choices=NotifyChannel.choices)
    url = models.CharField(max_length=2000, blank=True)
    slack = models.BooleanField(default=False, help_text='Send a Slack-compatible body {"text": ...}.')
    secret_ciphertext = models.TextField(blank=True, editable=False)
    emails = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="notificationrule_unique_name"),
            models.CheckConstraint(
                condition=Q(channel__in=NotifyChannel.values), name="notificationrule_channel_valid"
            ),
            models.CheckConstraint(
                condition=(Q(channel=NotifyChannel.WEBHOOK) & ~Q(url="") & ~Q(secret_ciphertext=""))
                | (Q(channel=NotifyChannel.EMAIL) & ~Q(emails=[])),
                name="notificationrule_channel_target",
            ),
            models.CheckConstraint(
                condition=Q(on_failed=True) | Q(on_timed_out=True) | Q(on_recovered=True),
                name="notificationrule_some_event",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project}/{self.name} ({self.channel})"

    def __repr__(self) -> str:
        return f"<NotificationRule {self.project_id}/{self.name} secret=******>"

    def set_secret(self, plaintext: str) -> None:
        self.secret_ciphertext = secret_encrypt(plaintext=plaintext)

    def reveal_secret(self) -> str:
        return secret_decrypt(ciphertext=self.secret_ciphertext)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class NotificationDelivery(models.Model):
    """One notification of one rule about one run (or a test), with its attempts."""

    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    # None: a test notification.
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=10, choices=NotifyChannel.choices)
    # What it tells: failed, timed_out, recovered or test.
    kind = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A run is notified once per rule, however often its job runs.
            models.UniqueConstraint(
                fields=["rule", "run"], condition=Q(run__isnull=False), name="notificationdelivery_unique_run"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="notificationdelivery_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["rule", "-created_at"], name="notifdelivery_rule_time")]

    def __str__(self) -> str:
        return f"{self.rule} {self.kind} run {self.run_id}: {self.status}"


class AuditEntry(models.Model):
    """One change to a project's configuration: who, when, what, from what to what.

    ``changes`` maps field -> {"old": ..., "new": ...}; secret values, webhook
    secrets and git credentials never get here (k8x_core.audit)."""

    class ActorKind(models.TextChoices):
        USER = "user", "user"
        API_KEY = "api_key", "API key"
        GIT = "git", "git sync"
        APPLY = "apply", "k8x_apply"
        SYSTEM = "system", "system"

    class Action(models.TextChoices):
        CREATE = "create", "create"
        UPDATE = "update", "update"
        DELETE = "delete", "delete"

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_entries")
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    kind = models.CharField(max_length=30)
    object_name = models.CharField(max_length=300, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.CheckConstraint(condition=Q(action__in=["create", "update", "delete"]), name="audit_action_valid"),
        ]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="audit_project_time"),
            models.Index(fields=["-created_at"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_kind}:{self.actor_name} {self.action} {self.kind} {self.object_name}"
