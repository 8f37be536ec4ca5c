"""k8x.asgi's application with the event bridge's fast path in front
(console.api.fastpath), for bench_bridge.py while k8x/asgi.py does not
wire it itself: ``daphne bench.bridge_asgi:application``."""

from k8x.asgi import application as deployed  # first: sets Django up

# isort: split
from console.api.fastpath import BridgeFastPath, bridge_asgi


def wired(app: object) -> bool:
    """Whether ``app`` (or its http route) is already the fast path."""
    mapping = getattr(app, "application_mapping", {})
    return isinstance(app, BridgeFastPath) or isinstance(mapping.get("http"), BridgeFastPath)


application = deployed if wired(deployed) else bridge_asgi(deployed)
