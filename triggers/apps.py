from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # hooks answers what tenants asks for (tenants.hooks); signals make open websockets re-check access
        from triggers.live import signals  # noqa: F401

        from . import hooks

        hooks.connect()
