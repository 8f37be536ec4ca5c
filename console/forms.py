"""Console forms. Field checks live here; cluster and domain checks are in k8x_core."""

from __future__ import annotations

import json
import shlex
from typing import Any

import jsonschema
from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator

from k8x_core.events.reserved import source_reserved_problem
from k8x_core.events.scheduler import schedule_validate
from k8x_core.hub.matching import trigger_clean
from k8x_core.kubevalues import resources_errors
from k8x_core.models import (
    DNS_LABEL_REGEX,
    ENV_NAME_REGEX,
    EventOutcome,
    Project,
    Role,
    RunStatus,
    Service,
    Trigger,
    TriggerKind,
)
from k8x_core.runs import validation
from k8x_core.runs.defaults import project_placement

env_key = RegexValidator(ENV_NAME_REGEX, "Use letters, digits and _ only, not starting with a digit.")


def _json_field_value(value: Any) -> str:
    return "" if value in (None, "", [], {}) else json.dumps(value, indent=2)


def _words(text: str, what: str) -> list[str]:
    """A JSON list of strings, or shell words."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"{what}: not a valid JSON list ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise forms.ValidationError(f"{what} must be a JSON list of strings.")
        return value
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise forms.ValidationError(f"{what}: {exc}") from None


class ServiceForm(forms.ModelForm[Service]):
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. billing, nightly.")
    command = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"class": "mono"}),
        help_text='Shell words (sh -c "echo hi") or a JSON list. Empty: the image\'s entrypoint.',
    )
    args = forms.CharField(required=False, widget=forms.TextInput(attrs={"class": "mono"}), help_text="Same forms.")
    resources = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, e.g. {"limits": {"memory": "128Mi", "cpu": "500m"}}.',
    )
    parameters_schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="JSON Schema of the manual-run form (type object, properties …).",
    )
    job_template = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
        help_text="A batch/v1 Job or Pod template in YAML. Replaces the simple fields when set.",
    )

    class Meta:
        model = Service
        fields = [
            "name",
            "description",
            "tags",
            "active",
            "allow_manual_triggering",
            "image",
            "command",
            "args",
            "resources",
            "job_template",
            "timeout_seconds",
            "retries",
            "max_concurrency",
            "schedule",
            "parameters_schema",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        help_texts = {
            "name": "Lower-case letters, digits and -, e.g. send-invoice.",
            "timeout_seconds": "Empty: no limit.",
            "max_concurrency": "Empty: no limit.",
        }

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["name"].validators.append(RegexValidator(DNS_LABEL_REGEX, "Use a DNS label: a-z, 0-9 and -."))
        if self.instance.pk:
            inst = self.instance
            self.initial["tags"] = ", ".join(inst.tags or [])
            self.initial["command"] = shlex.join(inst.command or [])
            self.initial["args"] = shlex.join(inst.args or [])
            self.initial["resources"] = _json_field_value(inst.resources)
            self.initial["parameters_schema"] = _json_field_value(inst.parameters_schema)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        clash = Service.objects.filter(project=self.project, name=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"Project {self.project.slug} already has a service named {name}.")
        return name

    def clean_tags(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]

    def clean_command(self) -> list[str]:
        return _words(self.cleaned_data["command"], "command")

    def clean_args(self) -> list[str]:
        return _words(self.cleaned_data["args"], "args")

    def clean_resources(self) -> dict[str, Any]:
        return self._json_object("resources")

    def clean_parameters_schema(self) -> dict[str, Any]:
        schema = self._json_object("parameters_schema")
        if schema:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise forms.ValidationError(f"Not a valid JSON Schema: {exc.message}") from None
            if schema.get("type", "object") != "object":
                raise forms.ValidationError('The parameters schema must have "type": "object".')
        return schema

    def clean_schedule(self) -> str:
        schedule: str = self.cleaned_data["schedule"].strip()
        problem = schedule_validate(expression=schedule) if schedule else None
        if problem:
            raise forms.ValidationError(f"Not a valid cron expression: {problem}.")
        return schedule

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The one validator of a service, the same as k8x_apply, git sync and the launcher.
        _, problems = validation.service_check(
            name=str(data.get("name") or self.instance.name or ""),
            job_template=str(data.get("job_template") or ""),
            image=str(data.get("image") or ""),
            retries=data.get("retries"),
            level=self.project.pod_security_level,
            placement=project_placement(project=self.project),
        )
        # Grouped per field: add_error drops the field from cleaned_data at its first error.
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            if problem.path == "image":
                by_field.setdefault("image", []).append("Give an image, or a Job template below.")
            elif problem.path == "retries":
                by_field.setdefault("retries", []).append(str(problem))
            else:
                by_field.setdefault("job_template", []).append(str(problem))
        for field, messages in by_field.items():
            if field in data:
                self.add_error(field, messages)
        return data

    def _json_object(self, field: str) -> dict[str, Any]:
        text = self.cleaned_data[field].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return value


class TriggerForm(forms.ModelForm[Trigger]):
    class Meta:
        model = Trigger
        fields = ["event_type", "source_glob", "cel_expression", "active"]
        widgets = {"cel_expression": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"})}
        labels = {"event_type": "Event type", "source_glob": "Source", "cel_expression": "CEL expression"}
        help_texts = {
            "event_type": "Exact type or glob, e.g. com.acme.order.*",
            "source_glob": "Optional glob over the event source, e.g. /shop/*",
            "cel_expression": "Optional, over `event`, e.g. event.data.amount > 100",
        }

    def clean_cel_expression(self) -> str:
        return str(self.cleaned_data["cel_expression"]).strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Raised with a message per field; Django's form puts each at its field.
        trigger_clean(
            trigger=Trigger(**{f: data.get(f) or "" for f in ("event_type", "source_glob", "cel_expression")})
        )
        return data


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"{what}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} must be a JSON object.")
    return value


class SampleEventForm(forms.Form):
    sample = forms.CharField(
        label="Sample event (CloudEvent JSON)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )

    def clean_sample(self) -> dict[str, Any]:
        return parse_json_object(self.cleaned_data["sample"], "The sample event")


class SendEventForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    event_type = forms.CharField(max_length=255, label="Type", help_text="e.g. com.acme.order.created")
    event_source = forms.CharField(max_length=512, label="Source", initial="k8x.console")
    subject = forms.CharField(max_length=512, required=False)
    payload = forms.CharField(
        label="Data (JSON)", widget=forms.Textarea(attrs={"rows": 6}), initial="{}", help_text="The event's data."
    )

    def __init__(self, *args: Any, projects: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]

    def clean_payload(self) -> Any:
        text = self.cleaned_data["payload"].strip() or "null"
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None


def manual_run_form_class(schema: dict[str, Any]) -> type[forms.Form]:
    """A form with one field per top-level property of a parameters JSON Schema."""
    props: dict[str, Any] = (schema or {}).get("properties") or {}
    required = set((schema or {}).get("required") or [])
    fields: dict[str, forms.Field] = {}
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "string")
        common: dict[str, Any] = {
            "required": name in required and kind != "boolean",
            "label": prop.get("title") or name,
            "help_text": prop.get("description", ""),
        }
        if "default" in prop:
            common["initial"] = prop["default"]
        field: forms.Field
        if "enum" in prop:
            field = forms.TypedChoiceField(
                choices=[(json.dumps(v), str(v)) for v in prop["enum"]], coerce=json.loads, **common
            )
            if "default" in prop:
                field.initial = json.dumps(prop["default"])
        elif kind == "integer":
            field = forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
        elif kind == "number":
            field = forms.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
        elif kind == "boolean":
            field = forms.BooleanField(**common)
        elif kind in ("object", "array"):
            field = JSONTextField(**common)
            if "default" in prop:
                field.initial = json.dumps(prop["default"])
        else:
            field = forms.CharField(
                max_length=prop.get("maxLength"), min_length=prop.get("minLength"), strip=False, **common
            )
        fields[name] = field
    return type("ManualRunForm", (forms.Form,), fields)


class JSONTextField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in (None, ""):
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from None


def manual_run_params(form: forms.Form) -> dict[str, Any]:
    """Form values as run params: empty optional fields are left out."""
    return {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}


class RunFilterForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.none(), required=False, empty_label="any service")
    status = forms.ChoiceField(choices=[("", "any status"), *RunStatus.choices], required=False)
    trigger = forms.ChoiceField(choices=[("", "any trigger"), *TriggerKind.choices], required=False)
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args: Any, services: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = services  # type: ignore[attr-defined]
        self.fields["service"].label_from_instance = lambda s: f"{s.project.slug}/{s.name}"  # type: ignore[attr-defined]


class EventFilterForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("", "any outcome"), *EventOutcome.choices], required=False)
    type = forms.CharField(required=False, label="Type starts with")


class ServiceFilterForm(forms.Form):
    tag = forms.CharField(required=False)
    active = forms.ChoiceField(
        choices=[("", "active and inactive"), ("yes", "active"), ("no", "inactive")], required=False
    )


class ConfigForm(forms.Form):
    key = forms.CharField(max_length=200, validators=[env_key])
    value = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_key(self) -> str:
        return _key_not_reserved(self.cleaned_data["key"])


def _key_not_reserved(key: str) -> str:
    if key.startswith("K8X_"):
        raise forms.ValidationError("K8X_ variables are reserved for the container contract.")
    return key


class SecretForm(ConfigForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        strip=False,
        help_text="Write-only: never shown again after saving.",
    )


class RegistryLoginForm(forms.Form):
    """A project's login to an image registry (a secret of kind ``registry``)."""

    key = forms.CharField(
        max_length=200, validators=[env_key], label="Name", help_text="A name for the login, e.g. REGISTRY_ACME."
    )
    server = forms.CharField(max_length=255, help_text="Registry host, e.g. registry.example.com:5000.")
    username = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        strip=False,
        help_text="Write-only: username and password are never shown again after saving.",
    )

    def clean_key(self) -> str:
        return _key_not_reserved(self.cleaned_data["key"])


class RunDefaultsForm(forms.Form):
    """A project's run defaults (owners); the values are checked by k8x_core.projects."""

    default_resources = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text="JSON, for containers that set neither requests nor limits, e.g. "
        '{"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}.',
    )
    default_timeout = forms.IntegerField(
        required=False, min_value=1, help_text="Seconds, for services that set no timeout. Empty: none."
    )

    def clean_default_resources(self) -> dict[str, Any]:
        text = (self.cleaned_data.get("default_resources") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
        errors = resources_errors(value=value, field="default_resources")
        if errors:
            raise forms.ValidationError([f"{path}: {message}" for path, message in errors])
        return dict(value)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.USER,
        required=False,
        help_text="What the key may do in the management API; at most your own role.",
    )

    def clean_role(self) -> Role:
        # Left out: the least privilege.
        return Role(self.cleaned_data["role"] or Role.USER)


class WebhookForm(forms.Form):
    slug = forms.SlugField(max_length=100, help_text="The URL will be /api/webhooks/<slug>.")
    name = forms.CharField(max_length=200, required=False)
    event_type = forms.CharField(max_length=255, help_text="Type of the events it produces, e.g. com.acme.push.")
    event_source = forms.CharField(max_length=512, required=False)

    def clean_event_source(self) -> str:
        source: str = self.cleaned_data["event_source"]
        problem = source_reserved_problem(source=source)
        if problem:
            raise forms.ValidationError(problem)
        return source


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.USER)

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"]
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise forms.ValidationError(f"No user named {username}.") from None


class NotificationRuleForm(forms.Form):
    """A notification rule (issue 15); the domain (k8x_core.notify.rules) checks the rest."""

    name = forms.CharField(max_length=100)
    service = forms.ChoiceField(required=False, help_text="Empty: every service of the project.")
    on_failed = forms.BooleanField(required=False, initial=True, label="On failed")
    on_timed_out = forms.BooleanField(required=False, initial=True, label="On timed out")
    on_recovered = forms.BooleanField(
        required=False, label="On succeeded after failure", help_text="The service's previous finished run failed."
    )
    channel = forms.ChoiceField(choices=[("webhook", "webhook"), ("email", "e-mail")], initial="webhook")
    url = forms.CharField(max_length=2000, required=False, label="Webhook URL")
    slack = forms.BooleanField(required=False, label='Slack-compatible body {"text": ...}')
    secret = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Signs the body (X-K8X-Signature-256). Empty: generated on creation, kept on change.",
    )
    emails = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="E-mail addresses", help_text="Comma separated."
    )
    active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(Service.objects.filter(project=project).order_by("name").values_list("name", flat=True))
        self.fields["service"].choices = [("", "(all services)")] + [(n, n) for n in names]  # type: ignore[attr-defined]
