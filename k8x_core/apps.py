from django.apps import AppConfig


class K8xCoreConfig(AppConfig):
    name = "k8x_core"
    verbose_name = "K8X"

    def ready(self) -> None:
        # Registers the system checks; their module reads settings, so not before the app is ready.
        from k8x_core import checks  # noqa: F401
