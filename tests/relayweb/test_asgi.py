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


async def test_lifespan_startup_freezes_startup_objects_and_raises_the_young_collection_threshold():
    import asyncio
    import gc

    before = gc.get_threshold()
    started = asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # no shutdown here: it would close the ingress other tests' server uses

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.create_task(application({"type": "lifespan"}, receive, send))
    try:
        await asyncio.wait_for(started.wait(), 5)
        assert gc.get_threshold() == (20_000, 50, 100)
        assert gc.get_freeze_count() > 10_000  # Django, the models and the URLconf are out of every collection
    finally:
        task.cancel()
        gc.unfreeze()
        gc.set_threshold(*before)
