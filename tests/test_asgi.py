"""The ASGI application (what uvicorn serves) routes HTTP to Django and websockets to Channels."""

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator

from relayweb.asgi import application


async def test_http_reaches_django():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"localhost")])
    response = await communicator.get_response()
    assert response["status"] == 200
    assert response["body"] == b'{"status": "ok"}'


@pytest.mark.django_db
async def test_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/anything/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert connected is False
