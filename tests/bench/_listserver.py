"""A static Kubernetes API for bench_live.py's 10,000-trigger relist: serves prepared list responses (JSON files
written by the benchmark from kubesim's own objects) for the watcher's four streams, and watches that stay open
and quiet. Creating 10,000 Knative Services in kubesim (controllers, pods, events) takes minutes on 2 cores; the
watcher's relist reads only these four lists, so it is measured on them.

    python tests/bench/_listserver.py DIR    (DIR/ksvcs.json, revisions.json, pods.json, events.json)

Prints `listserver ready url=http://127.0.0.1:<port>` once serving.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

PATHS = {
    "/apis/serving.knative.dev/v1/services": "ksvcs",
    "/apis/serving.knative.dev/v1/revisions": "revisions",
    "/api/v1/pods": "pods",
    "/api/v1/events": "events",
}


def make_app(data: dict[str, bytes]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = PATHS.get(request.path)
        if name is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                      "code": 404, "message": f"{request.path} is not served here"}, status=404)
        if request.query.get("watch") in ("true", "1"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await asyncio.sleep(float(request.query.get("timeoutSeconds", "300")))
            return response
        return web.Response(body=data[name], content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def main(directory: Path) -> None:
    data = {name: (directory / f"{name}.json").read_bytes() for name in PATHS.values()}
    runner = web.AppRunner(make_app(data), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"listserver ready url=http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
