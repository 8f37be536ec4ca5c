"""Django admin for every model. Secret values are write-only and masked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from k8x_core import models
from k8x_core.crypto import secret_encrypt
from k8x_core.hub.matching import trigger_clean

MASK = "••••••••"


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin[models.Project]):
    list_display = ["slug", "name", "namespace", "created_at"]
    search_fields = ["slug", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Retention overrides decide what is deleted: superusers only.
        if getattr(request.user, "is_superuser", False):
            return []
        return [f.name for f in models.Project._meta.fields if f.name.startswith("retention_")]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin[models.Membership]):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]


@admin.register(models.Service)
class ServiceAdmin(admin.ModelAdmin[models.Service]):
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
class TriggerAdmin(admin.ModelAdmin[models.Trigger]):
    form = TriggerAdminForm
    list_display = ["event_type", "source_glob", "service", "active", "origin"]
    list_filter = ["active", "origin"]


@admin.register(models.Config)
class ConfigAdmin(admin.ModelAdmin[models.Config]):
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
class SecretAdmin(admin.ModelAdmin[models.Secret]):
    form = SecretAdminForm
    list_display = ["key", "scope", "project", "service", "masked_value", "updated_at"]
    list_filter = ["scope"]
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
class WebhookAdmin(admin.ModelAdmin[models.Webhook]):
    form = WebhookAdminForm
    list_display = ["slug", "project", "event_type", "active", "masked_secret"]

    @admin.display(description="secret")
    def masked_secret(self, obj: models.Webhook) -> str:
        return MASK


@admin.register(models.ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[models.ApiKey]):
    """Keys are created with `k8x_apikey` or the console (shown once); here they
    can be inspected and revoked."""

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
class GitRepositoryAdmin(admin.ModelAdmin[models.GitRepository]):
    form = GitRepositoryAdminForm
    list_display = ["name", "project", "url", "branch", "last_commit", "last_synced_at"]
    readonly_fields = ["deploy_public_key", "last_commit", "last_synced_at"]


admin.site.register(models.ScheduleTick)
admin.site.register(models.SyncRecord)
admin.site.site_header = "K8X administration"


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
