"""ASGI entry point: HTTP (console, API) and websockets (live logs)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "k8x.settings")
# Without the web apps there is no console, API or websocket routing to serve.
if not settings.K8X_WEB_APPS:
    raise SystemExit(
        "refusing to start: K8X_WEB_APPS is false (the setting of the background processes); "
        "the web process needs K8X_WEB_APPS=true (the default)"
    )
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core import checks  # noqa: E402

from console.api.fastpath import bridge_asgi  # noqa: E402
from console.routing import websocket_urlpatterns  # noqa: E402
from k8x.bodylimit import daphne_body_limit_install  # noqa: E402

# Daphne does not run Django's system checks; insecure settings must not serve.
_errors = [m for m in checks.run_checks(include_deployment_checks=False) if m.is_serious()]
if _errors:
    raise SystemExit("refusing to start:\n" + "\n".join(str(m) for m in _errors))

# Daphne buffers whole bodies before the application sees them: cap them there.
daphne_body_limit_install()

application = ProtocolTypeRouter(
    {
        "http": bridge_asgi(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
