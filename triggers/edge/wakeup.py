"""Waking a trigger at zero before its webhook is forwarded, and telling the gateway's answers from the handler's.

Emissary cuts every request to a Knative route at its route timeout (15 s, RELAY_GATEWAY_ROUTE_TIMEOUT), and
Envoy's clock includes the activator's wait for a pod. So a cold start must not happen inside the webhook's
request: for a trigger with no ready pod (or an unknown count), the ingress first sends a wake-up request and
forwards the webhook only once a pod answered it; the webhook then has the whole route timeout for the
handler's own work.

The wake-up is `GET /` with `User-Agent: Knative-Activator-Probe` through the gateway:
- Knative's activator buffers it like any request and scales the revision from zero (its HealthHandler and
  ProbeHandler answer only kubelet probes and the K-Network-Probe header; the concurrency reporter counts it:
  knative/serving knative-v1.23.0 cmd/activator/main.go, pkg/activator/handler/healthz_handler.go,
  probe_handler.go, concurrency_reporter.go);
- once a pod is ready, its queue-proxy answers it with its health check and never passes it to the user
  container (pkg/queue/sharedmain/handlers.go: the Drainer's HealthCheckUAPrefixes include
  Knative-Activator-Probe; vendor/knative.dev/pkg/network/handlers/drain.go): 400
  `unexpected probe header value: ` (pkg/queue/health/handler.go). Any answer that is not the gateway's
  "not yet" means a pod is serving.
Each attempt is cut below the route timeout; 502/503/504 (Envoy's `upstream request timeout`, the activator's
`activator request timeout`, `no healthy upstream`) and Envoy's empty 404 (the route is not programmed yet) are
retried, until RELAY_ACTIVATION_TIMEOUT.

The other way, waiting for the watcher to write ready_pods, was not chosen: something must still wake the
revision (only a request through the activator does), it costs a database read per poll, and it trusts the
watcher's lag and liveness instead of the component that routes the webhook.

Envoy's own 404 (no route for the Host: router.cc Filter::decodeHeaders, `sendLocalReply(NotFound, "")`) has
an empty body and no `x-envoy-upstream-service-time`, a header Envoy adds to every response that came from an
upstream (router.cc Filter::onUpstreamHeaders, unless the Module sets suppress_envoy_headers, which Emissary
leaves off). A handler's 404, empty or not, passes through the router and carries that header: it is relayed
unchanged.
"""

from __future__ import annotations

from django.conf import settings

PROBE_AGENT = "Knative-Activator-Probe"
NOT_READY = (502, 503, 504)  # the gateway's or the activator's "no pod (yet)"
# Over the trigger's timeout when forwarding: Knative's own 504 (queue-proxy `request timeout`) arrives first.
FORWARD_MARGIN = 1.0
ROUTE_GRACE = 2.0  # seconds an Envoy 404 for a route that should exist is retried (Envoy not programmed yet)
RETRY_PAUSE = 0.1  # between attempts that were answered at once


def attempt_timeout() -> float:
    """One wake-up attempt: ended by us a second before Envoy would cut it."""
    return max(0.5, settings.RELAY_GATEWAY_ROUTE_TIMEOUT - 1)


def wake_headers(host: str, label: str) -> list[tuple[str, str]]:
    return [("Host", host), ("User-Agent", PROBE_AGENT), ("X-Relay-Trigger", label)]


def is_envoy_404(status: int, headers, body: bytes | None) -> bool:
    """Envoy's own `route_not_found` reply: 404, no body, no x-envoy-upstream-service-time (see above)."""
    if status != 404 or body:
        return False
    for name, _value in headers:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        if name.lower() == "x-envoy-upstream-service-time":
            return False
    return True


def awake(status: int, headers, body: bytes | None) -> bool:
    """A wake-up was answered by a pod (not the gateway's or the activator's "not yet")."""
    return status not in NOT_READY and not is_envoy_404(status, headers, body)
