"""Django admin for every model. Secret values are write-only and masked; every
change to a project's configuration made here is in the audit log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from k8x_core import kube, models
from k8x_core.audit import audit_fields, audit_record
from k8x_core.crypto import secret_encrypt
from k8x_core.hub.matching import trigger_clean
from k8x_core.notify.rules import rule_url_display
from k8x_core.runs import defaults, validation
from k8x_core.runs.defaults import project_placement
from k8x_core.runs.namespaces import project_namespace_ensure

MASK = "••••••••"


SECURITY_FIELDS = ("pod_security_level", "quota", "limits")
# Where a project's pods run (k8x_core.runs.defaults): platform superusers only.
PLACEMENT_FIELDS = ("node_selector", "tolerations")


def _refuse(problems: list[validation.Problem]) -> None:
    if problems:
        raise forms.ValidationError([str(p) for p in problems])


class AuditedAdmin(admin.ModelAdmin[Any]):
    """Records each create, change and delete made in the admin site in the audit log,
    as the console does, with the superuser as actor (``audit_kind``: the log's kind)."""

    audit_kind = ""

    def _audit(self, request: HttpRequest, obj: Any, *, action: str, before: dict[str, Any] | None) -> None:
        if isinstance(obj, models.Project):
            # A deleted project's entries go with it (cascade): its deletion is recorded without one.
            project = None if action == "delete" else obj
        else:
            project = getattr(obj, "project", None)
            if project is None and getattr(obj, "service", None) is not None:
                project = obj.service.project
        audit_record(
            project=project,
            actor=request.user,
            action=action,
            kind=self.audit_kind,
            name=str(obj),
            object_id=obj.pk,
            before=before,
            after=None if action == "delete" else audit_fields(obj),
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        old = type(obj)._default_manager.filter(pk=obj.pk).first() if change and obj.pk is not None else None
        before = audit_fields(old) if old is not None else None
        super().save_model(request, obj, form, change)
        self._audit(request, obj, action="update" if before is not None else "create", before=before)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._audit(request, obj, action="delete", before=audit_fields(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self._audit(request, obj, action="delete", before=audit_fields(obj))
        super().delete_queryset(request, queryset)


class ProjectAdminForm(forms.ModelForm[models.Project]):
    def clean_quota(self) -> dict[str, str]:
        return _quantities(self.cleaned_data.get("quota"), "quota")

    def clean_limits(self) -> dict[str, dict[str, str]]:
        value = self.cleaned_data.get("limits") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Must be a JSON object, e.g. {"default": {"memory": "512Mi"}}.')
        return {str(k): _quantities(v, f"limits.{k}") for k, v in value.items()}

    def clean_node_selector(self) -> dict[str, str]:
        value = self.cleaned_data.get("node_selector") or {}
        _refuse(defaults.node_selector_problems(value=value))
        return dict(value)

    def clean_tolerations(self) -> list[dict[str, Any]]:
        value = self.cleaned_data.get("tolerations") or []
        _refuse(defaults.tolerations_problems(value=value))
        return list(value)

    def clean_default_resources(self) -> dict[str, Any]:
        value = self.cleaned_data.get("default_resources") or {}
        _refuse(defaults.resources_problems(value=value))
        return dict(value)


def _quantities(value: Any, what: str) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int) for v in value.values()):
        raise forms.ValidationError(
            f'{what} must be a JSON object of resource name to quantity, e.g. {{"pods": "20"}}.'
        )
    return {str(k): str(v) for k, v in value.items()}


@admin.register(models.Project)
class ProjectAdmin(AuditedAdmin):
    audit_kind = "project"
    form = ProjectAdminForm
    list_display = ["slug", "name", "namespace", "pod_security_level", "created_at"]
    list_filter = ["pod_security_level"]
    search_fields = ["slug", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: models.Project | None = None) -> Any:
        # The Pod Security level, quotas and retention bound what a project may do and
        # keep: platform superusers only.
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += SECURITY_FIELDS
            readonly += PLACEMENT_FIELDS
            readonly += [f.name for f in models.Project._meta.fields if f.name.startswith("retention_")]
        return readonly

    def save_model(self, request: HttpRequest, obj: models.Project, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # audited there (AuditedAdmin), every field
        if not change or not set(SECURITY_FIELDS) & set(form.changed_data):
            return
        try:
            project_namespace_ensure(project=obj, force=True)
        except kube.KubeError as exc:
            # Saved; the next launch applies it (every launch makes sure of the namespace).
            messages.warning(request, f"Saved, but the namespace {obj.namespace} was not updated yet: {exc}")


@admin.register(models.Membership)
class MembershipAdmin(AuditedAdmin):
    audit_kind = "member"
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]


class ServiceAdminForm(forms.ModelForm[models.Service]):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        project = data.get("project")
        if project is None:
            return data
        # The one validator of a service, as in the console, k8x_apply, git sync and the launcher.
        _, problems = validation.service_check(
            name=str(data.get("name") or ""),
            job_template=str(data.get("job_template") or ""),
            image=str(data.get("image") or ""),
            retries=data.get("retries"),
            level=project.pod_security_level,
            placement=project_placement(project=project),
        )
        # Grouped per field: add_error drops the field from cleaned_data at its first error.
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            by_field.setdefault(problem.path if problem.path in ("image", "retries") else "job_template", []).append(
                str(problem)
            )
        for field, texts in by_field.items():
            self.add_error(field if field in self.fields else None, texts)
        return data


@admin.register(models.Service)
class ServiceAdmin(AuditedAdmin):
    audit_kind = "service"
    form = ServiceAdminForm
    list_display = ["name", "project", "active", "image", "origin", "updated_at"]
    list_filter = ["active", "project", "origin"]
    search_fields = ["name", "description"]


class TriggerAdminForm(forms.ModelForm[models.Trigger]):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Raised with a message per field; Django's form puts each at its field.
        trigger_clean(
            trigger=models.Trigger(**{f: data.get(f) or "" for f in ("event_type", "source_glob", "cel_expression")})
        )
        return data


@admin.register(models.Trigger)
class TriggerAdmin(AuditedAdmin):
    audit_kind = "trigger"
    form = TriggerAdminForm
    list_display = ["event_type", "source_glob", "service", "active", "origin"]
    list_filter = ["active", "origin"]


@admin.register(models.Config)
class ConfigAdmin(AuditedAdmin):
    audit_kind = "config"
    list_display = ["key", "scope", "project", "service", "value"]
    list_filter = ["scope"]
    search_fields = ["key"]


class SecretAdminForm(forms.ModelForm[models.Secret]):
    """The value can be written, never read back: the field always renders empty."""

    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only. Leave empty to keep the current value.",
    )

    class Meta:
        model = models.Secret
        fields = ["scope", "project", "service", "key"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.instance.pk and not cleaned.get("value"):
            self.add_error("value", "A new secret needs a value.")
        return cleaned

    def save(self, commit: bool = True) -> models.Secret:
        secret = super().save(commit=False)
        if self.cleaned_data.get("value"):
            secret.set_value(self.cleaned_data["value"])
        if commit:
            secret.save()
        return secret


@admin.register(models.Secret)
class SecretAdmin(AuditedAdmin):
    audit_kind = "secret"
    form = SecretAdminForm
    list_display = ["key", "kind", "server", "scope", "project", "service", "masked_value", "updated_at"]
    list_filter = ["scope", "kind"]
    search_fields = ["key"]

    @admin.display(description="value")
    def masked_value(self, obj: models.Secret) -> str:
        return MASK


class WebhookAdminForm(forms.ModelForm[models.Webhook]):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only HMAC secret. Leave empty to keep the current one.",
    )

    class Meta:
        model = models.Webhook
        fields = ["project", "slug", "name", "event_type", "event_source", "active"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.instance.pk and not cleaned.get("secret"):
            self.add_error("secret", "A new webhook needs a secret.")
        return cleaned

    def save(self, commit: bool = True) -> models.Webhook:
        webhook = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            webhook.set_secret(self.cleaned_data["secret"])
        if commit:
            webhook.save()
        return webhook


@admin.register(models.Webhook)
class WebhookAdmin(AuditedAdmin):
    audit_kind = "webhook"
    form = WebhookAdminForm
    list_display = ["slug", "project", "event_type", "active", "masked_secret"]

    @admin.display(description="secret")
    def masked_secret(self, obj: models.Webhook) -> str:
        return MASK


@admin.register(models.ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    """Keys are created with `k8x_apikey` or the console (shown once); here they
    can be inspected and revoked."""

    audit_kind = "api_key"
    list_display = ["name", "project", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    list_filter = ["project"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(models.Event)
class EventAdmin(admin.ModelAdmin[models.Event]):
    list_display = ["type", "source", "ce_id", "outcome", "correlation_id", "received_at"]
    list_filter = ["outcome"]
    search_fields = ["ce_id", "type", "source", "correlation_id"]
    show_full_result_count = False


@admin.register(models.Run)
class RunAdmin(admin.ModelAdmin[models.Run]):
    list_display = ["id", "service", "status", "trigger_kind", "exit_code", "reason", "created_at"]
    list_filter = ["status", "trigger_kind"]
    search_fields = ["id", "correlation_id", "job_name"]
    raw_id_fields = ["event", "retry_of"]
    show_full_result_count = False


@admin.register(models.UnmatchedCount)
class UnmatchedCountAdmin(admin.ModelAdmin[models.UnmatchedCount]):
    """Read-only: the hub counts unmatched events here (k8x_core.hub.unmatched)."""

    list_display = ["project", "type", "count", "first_seen_at", "last_seen_at"]
    search_fields = ["type"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.UnmatchedCount | None = None) -> bool:
        return False


@admin.register(models.RunLog)
class RunLogAdmin(admin.ModelAdmin[models.RunLog]):
    """Read-only: a run's log is what its containers printed."""

    list_display = ["id", "run", "bytes"]
    raw_id_fields = ["run"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.RunLog | None = None) -> bool:
        return False


class GitRepositoryAdminForm(forms.ModelForm[models.GitRepository]):
    https_token = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, help_text="Write-only."
    )

    class Meta:
        model = models.GitRepository
        fields = ["project", "name", "url", "branch", "path", "auth"]

    def save(self, commit: bool = True) -> models.GitRepository:
        repo = super().save(commit=False)
        if self.cleaned_data.get("https_token"):
            repo.https_token_encrypted = secret_encrypt(plaintext=self.cleaned_data["https_token"])
        if commit:
            repo.save()
        return repo


@admin.register(models.GitRepository)
class GitRepositoryAdmin(AuditedAdmin):
    audit_kind = "git_repository"
    form = GitRepositoryAdminForm
    list_display = ["name", "project", "url", "branch", "last_commit", "last_synced_at"]
    readonly_fields = ["deploy_public_key", "last_commit", "last_synced_at"]


admin.site.register(models.ScheduleTick)
admin.site.register(models.SyncRecord)
admin.site.site_header = "K8X administration"


@admin.register(models.NotificationRule)
class NotificationRuleAdmin(AuditedAdmin):
    """Rules are made in the console (the secret is shown once there); here they can be
    inspected, switched off and deleted. The URL's path may be a credential: not shown."""

    audit_kind = "notification_rule"
    list_display = ["name", "project", "service", "channel", "masked_url", "active"]
    list_filter = ["channel", "active"]
    exclude = ["url"]
    readonly_fields = ["masked_url", "created_by"]

    @admin.display(description="URL")
    def masked_url(self, obj: models.NotificationRule) -> str:
        return rule_url_display(url=obj.url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(models.NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin[models.NotificationDelivery]):
    list_display = ["rule", "run", "kind", "channel", "status", "attempts", "response_code", "created_at"]
    list_filter = ["status", "channel", "kind"]
    raw_id_fields = ["run"]


@admin.register(models.AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[models.AuditEntry]):
    """Read-only: the audit log is written by k8x_core.audit and pruned by retention only."""

    list_display = ["created_at", "project", "actor_kind", "actor_name", "action", "kind", "object_name"]
    list_filter = ["kind", "action", "actor_kind"]
    search_fields = ["actor_name", "object_name"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
