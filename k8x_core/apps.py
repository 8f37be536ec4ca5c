from django.apps import AppConfig


class K8xCoreConfig(AppConfig):
    name = "k8x_core"
    verbose_name = "K8X"

    def ready(self) -> None:
        # Registers the system checks.
        from k8x_core import checks  # noqa: F401
