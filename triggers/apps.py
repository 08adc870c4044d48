from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # hooks answers what tenants asks for (tenants.hooks); live.signals make open websockets re-check access;
        # a trigger saved or deleted anywhere makes every ingress forget its cached route (edge.invalidation)
        from django.db.models.signals import post_delete, post_save

        from . import hooks
        from .edge import invalidation
        from .live import signals  # noqa: F401
        from .models import Trigger

        hooks.connect()
        post_save.connect(invalidation.trigger_changed, sender=Trigger, dispatch_uid="route-invalidation-save")
        post_delete.connect(invalidation.trigger_changed, sender=Trigger, dispatch_uid="route-invalidation-delete")
