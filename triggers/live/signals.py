"""Signal receivers that only tell open websockets to re-check access (triggers/live/consumers.py decides).
Registered by TriggersConfig.ready()."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import broadcast


@receiver(user_logged_out, dispatch_uid="relay-sockets-logged-out")
def close_signed_out_sockets(sender, request, user, **kwargs) -> None:
    if user is not None and request.session.session_key:
        broadcast.access_revoked(user_id=user.pk, session_key=request.session.session_key)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="relay-sockets-user-saved")
def close_sockets_of_deactivated_user(sender, instance, created, update_fields=None, **kwargs) -> None:
    if created or update_fields == frozenset({"last_login"}):
        return  # a sign-in records its time: nothing about access changed
    if not instance.is_active or not instance.is_staff:
        broadcast.access_revoked(user_id=instance.pk)
