"""The HTTP API (event bridge, run status, OpenAPI)."""

from django.urls import URLPattern, URLResolver

app_name = "api"
urlpatterns: list[URLPattern | URLResolver] = []
