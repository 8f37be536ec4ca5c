"""Console pages."""

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, path

from console.views import (
    audit,  # audit log (issue 15)
    dashboard,
    events,
    notifications,  # issue 15
    projects,
    redrive,  # dead letters and failed runs (issue 15)
    repos,  # git deployment (issue 8)
    runs,
    service_pause,  # issue 15
    services,
)

app_name = "console"
urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.dashboard, name="dashboard"),
    # Services and triggers
    path("services/", services.service_list, name="service_list"),
    path("projects/<slug:slug>/services/new/", services.service_create, name="service_create"),
    path("projects/<slug:slug>/services/<slug:name>/", services.service_detail, name="service_detail"),
    path("projects/<slug:slug>/services/<slug:name>/edit/", services.service_edit, name="service_edit"),
    path("projects/<slug:slug>/services/<slug:name>/toggle/", services.service_toggle, name="service_toggle"),
    path("projects/<slug:slug>/services/<slug:name>/delete/", services.service_delete, name="service_delete"),
    path("projects/<slug:slug>/services/<slug:name>/run/", services.service_run, name="service_run"),
    path("projects/<slug:slug>/services/<slug:name>/triggers/", services.trigger_create, name="trigger_create"),
    path("projects/<slug:slug>/services/<slug:name>/triggers/test/", services.trigger_test, name="trigger_test"),
    path(
        "projects/<slug:slug>/services/<slug:name>/triggers/<int:trigger_id>/",
        services.trigger_edit,
        name="trigger_edit",
    ),
    path(
        "projects/<slug:slug>/services/<slug:name>/triggers/<int:trigger_id>/delete/",
        services.trigger_delete,
        name="trigger_delete",
    ),
    # Pause (issue 15)
    path("projects/<slug:slug>/services/<slug:name>/pause/", service_pause.service_pause, name="service_pause"),
    path("projects/<slug:slug>/services/<slug:name>/resume/", service_pause.service_resume, name="service_resume"),
    path(
        "projects/<slug:slug>/services/<slug:name>/skip-pending/",
        service_pause.service_skip_pending,
        name="service_skip_pending",
    ),
    # Runs
    path("runs/", runs.run_list, name="run_list"),
    path("runs/<uuid:run_id>/", runs.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/badge/", runs.run_badge, name="run_badge"),
    path("runs/<uuid:run_id>/summary/", runs.run_summary, name="run_summary"),
    path("runs/<uuid:run_id>/log.txt", runs.run_log_download, name="run_log_download"),
    path("runs/<uuid:run_id>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<uuid:run_id>/rerun/", runs.run_rerun, name="run_rerun"),
    path("flows/<str:correlation_id>/", runs.correlation_detail, name="correlation_detail"),
    # Events
    path("events/", events.event_list, name="event_list"),
    path("events/send/", events.event_send, name="event_send"),
    path("events/sent/<str:correlation_id>/", events.correlation_wait, name="correlation_wait"),
    path("events/<int:event_id>/", events.event_detail, name="event_detail"),
    path("events/<int:event_id>/replay/", events.event_replay, name="event_replay"),
    # Projects
    path("projects/", projects.project_list, name="project_list"),
    path("projects/<slug:slug>/", projects.project_detail, name="project_detail"),
    path("projects/<slug:slug>/configs/", projects.project_configs, name="project_configs"),
    path("projects/<slug:slug>/secrets/", projects.project_secrets, name="project_secrets"),
    path(
        "projects/<slug:slug>/secrets/<int:secret_id>/delete/",
        projects.project_secret_delete,
        name="project_secret_delete",
    ),
    path("projects/<slug:slug>/run-defaults/", projects.project_defaults, name="project_defaults"),
    path("projects/<slug:slug>/api-keys/", projects.project_apikeys, name="project_apikeys"),
    path(
        "projects/<slug:slug>/api-keys/<int:key_id>/revoke/",
        projects.project_apikey_revoke,
        name="project_apikey_revoke",
    ),
    path("projects/<slug:slug>/webhooks/", projects.project_webhooks, name="project_webhooks"),
    path(
        "projects/<slug:slug>/webhooks/<int:webhook_id>/delete/",
        projects.project_webhook_delete,
        name="project_webhook_delete",
    ),
    path("projects/<slug:slug>/members/", projects.project_members, name="project_members"),
    path(
        "projects/<slug:slug>/members/<int:member_id>/remove/",
        projects.project_member_remove,
        name="project_member_remove",
    ),
    # Notifications (issue 15)
    path("projects/<slug:slug>/notifications/", notifications.project_notifications, name="project_notifications"),
    path(
        "projects/<slug:slug>/notifications/<int:rule_id>/",
        notifications.notification_rule_edit,
        name="notification_rule_edit",
    ),
    path(
        "projects/<slug:slug>/notifications/<int:rule_id>/delete/",
        notifications.notification_rule_delete,
        name="notification_rule_delete",
    ),
    path(
        "projects/<slug:slug>/notifications/<int:rule_id>/test/",
        notifications.notification_rule_test,
        name="notification_rule_test",
    ),
    # --- audit, dead letters and failed runs (issue 15) ---
    path("projects/<slug:slug>/audit/", audit.project_audit, name="project_audit"),
    path("events/<int:event_id>/redrive/", redrive.event_redrive_view, name="event_redrive"),
    path("projects/<slug:slug>/services/<slug:name>/redrive/", redrive.service_redrive_view, name="service_redrive"),
    # --- end issue 15 ---
    # Git repositories (issue 8) add their routes below.
    # --- git deployment (issue 8, owned by the git deployment engineer) ---
    path("projects/<slug:slug>/repos/", repos.repo_list, name="repo_list"),
    path("projects/<slug:slug>/repos/<slug:name>/", repos.repo_detail, name="repo_detail"),
    path("projects/<slug:slug>/repos/<slug:name>/sync/", repos.repo_sync_now, name="repo_sync"),
    path("projects/<slug:slug>/repos/<slug:name>/key/", repos.repo_key_regenerate_view, name="repo_key_regenerate"),
    path("projects/<slug:slug>/repos/<slug:name>/token/", repos.repo_token, name="repo_token"),
    path("projects/<slug:slug>/repos/<slug:name>/delete/", repos.repo_delete, name="repo_delete"),
    path("projects/<slug:slug>/syncs/<int:sync_id>/", repos.sync_detail, name="sync_detail"),
    # --- end git deployment ---
]
