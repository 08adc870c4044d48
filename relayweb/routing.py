"""Websocket routes (Channels)."""

from django.urls import path

from triggers.live.consumers import OperatorsConsumer, TenantConsumer

websocket_urlpatterns = [
    path("ws/tenants/<slug:slug>/", TenantConsumer.as_asgi()),
    path("ws/ops/", OperatorsConsumer.as_asgi()),
]
