"""The Django project: settings, URL routes and the ASGI/WSGI entry points."""
