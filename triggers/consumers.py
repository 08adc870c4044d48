"""Websockets: `ws/tenants/<slug>/` for a tenant's members, `ws/ops/` for operators (staff).

Membership is checked in connect() with the same permission helper as the UI and the API; a refused
socket is closed before it is accepted. On connect the client gets a snapshot, then one message per
change, built in triggers/broadcast.py.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tenants.permissions import Action, can, tenants_of

from . import broadcast, diag
from .models import Trigger


class TenantConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.group = None
        tenant = await self._tenant()
        if tenant is None:
            await self.close()  # refuse: never accepted, never joined
            return
        self.group = broadcast.tenant_group(tenant.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", "payload": await self._snapshot(tenant)})

    @database_sync_to_async
    def _tenant(self):
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        tenant = tenants_of(user).filter(slug=slug).first() if user is not None else None
        return tenant if tenant is not None and can(user, tenant, Action.VIEW) else None

    @database_sync_to_async
    def _snapshot(self, tenant) -> dict:
        triggers = list(Trigger.objects.live().filter(tenant=tenant).select_related("tenant"))
        state = diag.load()
        hosts = set().union(*(diag.trigger_hosts(t) for t in triggers)) if triggers else set()
        return {"triggers": [broadcast.trigger_payload(t) for t in triggers],
                "diag": diag.for_hosts(state, hosts) if state else None}

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        pass  # the socket is server → browser only

    async def relay_event(self, message) -> None:
        await self.send_json({"type": message["event"], "payload": message["payload"]})

    async def relay_events(self, message) -> None:
        """Several events in one channel-layer message (the ingress batches its "delivery" events)."""
        for event, payload in message["events"]:
            await self.send_json({"type": event, "payload": payload})


class OperatorsConsumer(TenantConsumer):
    async def connect(self) -> None:
        self.group = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close()
            return
        self.group = broadcast.OPERATORS
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", "payload": {"diag": await database_sync_to_async(diag.load)()}})
