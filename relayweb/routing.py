"""Websocket routes (Channels). Consumers arrive with the live-status issue."""

websocket_urlpatterns: list = []
