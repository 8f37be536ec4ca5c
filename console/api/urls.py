"""The HTTP API (event bridge, run status, OpenAPI)."""

from django.urls import URLPattern, URLResolver, include, path

from console.api import logs, urls_v1, views

app_name = "api"
urlpatterns: list[URLPattern | URLResolver] = [
    path("events", views.events, name="events"),
    path("events/simple", views.events_simple, name="events_simple"),
    # str, not slug: a wrong slug gets the JSON 404 naming it, not an HTML page.
    path("webhooks/<str:slug>", views.webhook, name="webhook"),
    path("runs/<uuid:run_id>", views.run_status, name="run"),
    path("correlations/<str:correlation_id>", views.correlation_status, name="correlation"),
    path("openapi.json", views.openapi, name="openapi"),
    path("runs/<uuid:run_id>/log", logs.run_log, name="run_log"),
    path("v1/", include(urls_v1.urlpatterns)),
]
