"""Route-cache invalidation across ingress processes and replicas, over Redis pub/sub.

Each ingress keeps token → Route for RELAY_INGRESS_CACHE_TTL seconds (ingress.RouteCache). Replicas share only
PostgreSQL and Redis, so a trigger saved or deleted anywhere (suspend, resume, edit, rotate, delete: every
change goes through Trigger.save() or delete()) publishes its tokens on CHANNEL after the transaction commits,
and every ingress process, subscribed, forgets them at once: the next webhook reads the trigger again.

Failure modes stay bounded by the TTL: a publish that fails is logged (the entry expires as before); a listener
that loses Redis forgets every cached route when it subscribes again (it may have missed messages meanwhile).
Status fields the watcher writes with update() (ready pods, readiness) are not published: they change often and
the TTL is their bound, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import redis
import redis.asyncio as aredis
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

CHANNEL = "relayweb:routes"
_local = threading.local()


def _client() -> redis.Redis:
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "url", None) != settings.REDIS_URL:
        client = _local.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        _local.url = settings.REDIS_URL
    return client


def publish(tokens) -> None:
    """Tell every ingress to forget these tokens' routes (now; callers wait for their commit)."""
    message = " ".join(t for t in tokens if t)
    if not message:
        return
    try:
        _client().publish(CHANNEL, message)
    except redis.RedisError as e:
        log.warning("route invalidation not published (cached routes expire within %s s): %s",
                    settings.RELAY_INGRESS_CACHE_TTL, e)


def trigger_changed(sender, instance, **kwargs) -> None:
    """post_save / post_delete of Trigger: publish its tokens once the change is committed."""
    tokens = (instance.token, instance.previous_token)
    transaction.on_commit(lambda: publish(tokens))


class Listener:
    """Subscribes to CHANNEL in the ingress's event loop and makes `cache` forget what is published."""

    def __init__(self, cache, *, max_backoff: float = 5.0):
        self.cache, self.max_backoff = cache, max_backoff
        self.task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()  # set while subscribed (tests wait for it)
        self.received = 0

    def ensure_started(self) -> None:
        """Start listening in the running loop (once; again if that loop changed or the task ended)."""
        task = self.task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        self.subscribed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name="route-invalidations")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            client = aredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.cache.forget_all()  # what was cached before (or while unsubscribed) may be stale
                    self.subscribed.set()
                    backoff = 0.2
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        self.received += 1
                        for token in message["data"].decode("ascii", "replace").split():
                            self.cache.forget(token)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis gone: cached routes expire by TTL meanwhile
                log.warning("route invalidations: %s; listening again in %.1f s", e, backoff)
            finally:
                self.subscribed.clear()
                await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
