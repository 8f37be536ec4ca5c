"""The management API's routes, under /api/v1/ (see console/api/v1.py)."""

from django.urls import URLPattern, URLResolver, path

from console.api import v1

P = "projects/<str:slug>"
S = f"{P}/services/<str:name>"

# Only str: a wrong slug, name or id gets the JSON 404 naming it, not an HTML page.
urlpatterns: list[URLPattern | URLResolver] = [
    path("projects", v1.projects, name="v1_projects"),
    path(P, v1.project, name="v1_project"),
    path(f"{P}/services", v1.services, name="v1_services"),
    path(S, v1.service, name="v1_service"),
    path(f"{S}/triggers", v1.triggers, name="v1_triggers"),
    path(f"{S}/triggers/test", v1.trigger_test, name="v1_trigger_test"),
    path(f"{S}/triggers/<str:trigger_id>", v1.trigger, name="v1_trigger"),
    path(f"{S}/configs", v1.configs, name="v1_service_configs"),
    path(f"{S}/configs/<str:key>", v1.config, name="v1_service_config"),
    path(f"{S}/secrets", v1.secrets, name="v1_service_secrets"),
    path(f"{S}/secrets/<str:key>", v1.secret, name="v1_service_secret"),
    path(f"{S}/runs", v1.service_runs, name="v1_service_runs"),
    path(f"{P}/configs", v1.configs, name="v1_configs"),
    path(f"{P}/configs/<str:key>", v1.config, name="v1_config"),
    path(f"{P}/secrets", v1.secrets, name="v1_secrets"),
    path(f"{P}/secrets/<str:key>", v1.secret, name="v1_secret"),
    path(f"{P}/runs", v1.runs, name="v1_runs"),
    path(f"{P}/runs/<str:run_id>", v1.run, name="v1_run"),
    path(f"{P}/runs/<str:run_id>/cancel", v1.run_cancel, name="v1_run_cancel"),
    path(f"{P}/runs/<str:run_id>/rerun", v1.run_rerun, name="v1_run_rerun"),
    path(f"{P}/events", v1.events, name="v1_events"),
]
