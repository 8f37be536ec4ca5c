"""Websocket routes (the live log viewer)."""

from django.urls import URLPattern, URLResolver, path

from console.consumers import RunLogConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/runs/<uuid:run_id>/logs/", RunLogConsumer.as_asgi()),
]
