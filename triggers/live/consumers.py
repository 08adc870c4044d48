"""Websockets: `ws/tenants/<slug>/` for a tenant's members, `ws/ops/` for operators (staff).

Membership is checked in connect() with the same permission helper as the UI and the API; a refused
socket is closed before it is accepted. On connect the client gets a snapshot, then one message per
change, built in triggers/live/broadcast.py.

Access is checked again on every `access.revoked` message (to the user's group, or the tenant's): the
user is re-read from the socket's session, so signing out, deactivation and a changed password count,
then the membership. If access is gone, the socket gets a last `access.revoked` event saying why and is
closed with code 4403 (broadcast.ACCESS_REVOKED_CODE), after which the page stops reconnecting.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model

from tenants.models import Tenant
from tenants.permissions import Action, allows, can, role_of, tenants_of
from triggers.gateway import diag
from triggers.models import Trigger

from . import broadcast


class TenantConsumer(AsyncJsonWebsocketConsumer):
    tenant = None

    async def connect(self) -> None:
        self.groups_joined = []
        tenant = await self._tenant()
        if tenant is None:
            await self.close()  # refuse: never accepted, never joined
            return
        self.tenant = tenant
        await self._join(broadcast.tenant_group(tenant.pk), broadcast.user_group(self.scope["user"].pk))
        await self.accept()
        await self.send_json({"type": "snapshot", "payload": await self._snapshot(tenant)})

    async def _join(self, *groups: str) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)

    @database_sync_to_async
    def _tenant(self):
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        tenant = tenants_of(user).filter(slug=slug).first() if user is not None else None
        if tenant is None or tenant.state == Tenant.State.DELETING:
            return None
        return tenant if can(user, tenant, Action.VIEW) else None

    async def access_revoked(self, message) -> None:
        if message.get("tenant_id") not in (None, getattr(self.tenant, "pk", None)):
            return  # about another tenant of this user
        session = message.get("session")
        if session is not None and session != broadcast.session_digest(self.scope["session"].session_key):
            return  # another session of this user signed out; this one is still signed in
        reason = "You signed out." if session is not None else await self._revocation_reason()
        if reason:
            await self.send_json({"type": "access.revoked", "reason": reason})
            await self.close(code=broadcast.ACCESS_REVOKED_CODE)

    def _current_user(self):
        """The socket's user as the session says now (AnonymousUser once signed out or deactivated)."""
        key = self.scope["session"].session_key
        store = import_module(settings.SESSION_ENGINE).SessionStore(key)
        return auth.get_user(SimpleNamespace(session=store)) if key else auth.models.AnonymousUser()

    def _user_reason(self, user) -> str | None:
        if user.is_authenticated and user.pk == self.scope["user"].pk:
            return None
        if not get_user_model().objects.filter(pk=self.scope["user"].pk, is_active=True).exists():
            return "Your account has been deactivated."
        return "You have been signed out."

    @database_sync_to_async
    def _revocation_reason(self) -> str | None:
        """Why this socket may no longer stay open, or None while access lasts."""
        user = self._current_user()
        if reason := self._user_reason(user):
            return reason
        name = self.tenant.name
        tenant = Tenant.objects.filter(pk=self.tenant.pk).first()
        if tenant is None or tenant.state == Tenant.State.DELETING:
            return f"{name} is being deleted."
        role = role_of(user, tenant)
        if role is None:
            return f"You are no longer a member of {name}."
        return None if allows(role, Action.VIEW) else f"Your role in {name} no longer allows viewing it."

    @database_sync_to_async
    def _snapshot(self, tenant) -> dict:
        triggers = list(Trigger.objects.live().filter(tenant=tenant).select_related("tenant"))
        state = diag.load()
        hosts = set().union(*(diag.trigger_hosts(t) for t in triggers)) if triggers else set()
        return {"triggers": [broadcast.trigger_payload(t) for t in triggers],
                "diag": diag.for_hosts(state, hosts) if state else None}

    async def disconnect(self, code) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    MAX_LOG_FOLLOWS = 4  # log panels one socket may follow at once

    async def receive_json(self, content, **kwargs) -> None:
        """The browser's one request: `{"type": "logs.follow" | "logs.unfollow", "trigger": <id>}`, a log panel
        opening (or pausing). Only a trigger of this socket's tenant can be followed; anything else is ignored."""
        if not isinstance(content, dict) or self.tenant is None:
            return
        kind, trigger_id = content.get("type"), content.get("trigger")
        if kind not in ("logs.follow", "logs.unfollow") or type(trigger_id) is not int:
            return
        group = broadcast.logs_group(trigger_id)
        if kind == "logs.unfollow":
            if group in self.groups_joined:
                self.groups_joined.remove(group)
                await self.channel_layer.group_discard(group, self.channel_name)
            return
        following = [g for g in self.groups_joined if g.startswith("logs-")]
        if group in following or len(following) >= self.MAX_LOG_FOLLOWS:
            return
        if await database_sync_to_async(Trigger.objects.filter(pk=trigger_id, tenant=self.tenant).exists)():
            await self._join(group)
            await self.send_json({"type": "logs.following", "payload": {"trigger_id": trigger_id}})

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None or len(text_data) > 1024:
            return  # binary frames and anything longer than a request are not ours
        try:
            await super().receive(text_data=text_data, **kwargs)
        except ValueError:  # not JSON
            return

    async def dispatch(self, message) -> None:
        """Events pushed to the page touch no database: they skip channels' per-message connection check (a hop
        to the one sync thread for every message on every socket, 28 % of the web process's samples when 1,000
        sockets followed a pod change, tests/bench/bench_live.py). Everything else goes the usual way."""
        kind = message.get("type")
        if kind == "relay.event":
            await self.relay_event(message)
        elif kind == "relay.events":
            await self.relay_events(message)
        else:
            await super().dispatch(message)

    async def relay_event(self, message) -> None:
        await self.send_json({"type": message["event"], "payload": message["payload"]})

    async def relay_events(self, message) -> None:
        """Several events in one channel-layer message (the ingress batches its "delivery" events)."""
        for event, payload in message["events"]:
            await self.send_json({"type": event, "payload": payload})


class OperatorsConsumer(TenantConsumer):
    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close()
            return
        await self._join(broadcast.OPERATORS, broadcast.user_group(user.pk))
        await self.accept()
        await self.send_json({"type": "snapshot", "payload": {"diag": await database_sync_to_async(diag.load)()}})

    @database_sync_to_async
    def _revocation_reason(self) -> str | None:
        user = self._current_user()
        if reason := self._user_reason(user):
            return reason
        return None if user.is_staff else "You are no longer an operator."
