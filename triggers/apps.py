from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # hooks answers what tenants asks for (tenants.hooks); live.signals make open websockets re-check access
        from . import hooks
        from .live import signals  # noqa: F401

        hooks.connect()
