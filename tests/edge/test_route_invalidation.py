"""Route caches of every ingress forget a changed trigger within a second, over Redis pub/sub (issue 17 item 3):
replicas share only PostgreSQL and Redis, and a cached route used to live its whole TTL after a suspend."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from triggers import services
from triggers.deliveries.retries import trigger_rotate_token
from triggers.edge import invalidation
from triggers.edge.ingress import RouteCache
from triggers.models import Trigger

pytestmark = pytest.mark.django_db(transaction=True)
TTL = 60.0  # without invalidation a cached route would stay a minute


async def replicas(count: int = 2):
    caches = [RouteCache(TTL) for _ in range(count)]
    listeners = [invalidation.Listener(cache) for cache in caches]
    for listener in listeners:
        listener.ensure_started()
    await asyncio.wait_for(asyncio.gather(*(listener.subscribed.wait() for listener in listeners)), 5)
    return caches, listeners


async def until(predicate, within: float = 1.0) -> float:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < within, f"not within {within} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_suspend_resume_and_edit_reach_every_replica_within_a_second(tenant_a):
    trigger = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    caches, listeners = await replicas()
    try:
        for cache in caches:
            assert (await cache.get(trigger.token)).suspended is False  # cached for a minute

        await sync_to_async(services.trigger_suspend)(trigger=trigger)
        for cache in caches:
            await until(lambda c=cache: _suspended(c, trigger.token))

        await sync_to_async(services.trigger_resume)(trigger=trigger)
        for cache in caches:
            await until(lambda c=cache: _not_suspended(c, trigger.token))

        trigger.mode = Trigger.Mode.ASYNC
        await sync_to_async(trigger.save)()
        for cache in caches:
            await until(lambda c=cache: _mode(c, trigger.token, "async"))
    finally:
        for listener in listeners:
            await listener.stop()


async def test_a_deleted_or_rotated_trigger_is_forgotten_everywhere(tenant_a):
    gone = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="gone", image="kubesim/echo")
    rotated = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="rotated", image="kubesim/echo")
    caches, listeners = await replicas()
    try:
        token, old = gone.token, rotated.token
        for cache in caches:
            assert await cache.get(token) is not None and await cache.get(old) is not None
        await sync_to_async(gone.delete)()
        await sync_to_async(trigger_rotate_token)(rotated)
        for cache in caches:
            await until(lambda c=cache: _gone(c, token))
            assert old not in cache.entries  # re-read: still valid for the overlap, from the database
    finally:
        for listener in listeners:
            await listener.stop()


async def test_a_load_racing_a_change_is_not_kept(tenant_a):
    """A route read before a change commits but returned after its invalidation must not be cached for TTL."""
    trigger = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    cache = RouteCache(TTL)
    loading = asyncio.ensure_future(cache.get(trigger.token))
    await asyncio.sleep(0)  # the load has started
    cache.forget(trigger.token)  # the invalidation arrives while it loads
    assert await loading is not None
    assert trigger.token not in cache.entries


async def test_without_redis_a_change_is_still_saved_and_routes_expire_by_ttl(tenant_a, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    trigger = await sync_to_async(Trigger.objects.create)(tenant=tenant_a, name="hello", image="kubesim/echo")
    await sync_to_async(services.trigger_suspend)(trigger=trigger)
    assert (await sync_to_async(Trigger.objects.get)(pk=trigger.pk)).suspended
    assert "route invalidation not published" in caplog.text


async def _suspended(cache, token):
    return (await cache.get(token)).suspended


async def _not_suspended(cache, token):
    return not (await cache.get(token)).suspended


async def _mode(cache, token, mode):
    return (await cache.get(token)).mode == mode


async def _gone(cache, token):
    return await cache.get(token) is None
