"""Every knob of the simulator, in one dataclass shared by the CLI, the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SimConfig:
    # Listening addresses; port 0 picks a free port (tests), the CLI defaults are fixed ports.
    api_host: str = "127.0.0.1"
    api_port: int = 0
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 0
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    # Where to write a kubeconfig (None: do not write one) and the bearer token the API checks
    # (None: a random one is generated at start).
    kubeconfig: str | None = None
    token: str | None = None
    # Serve the API over HTTPS with a self-signed certificate (its CA goes into the kubeconfig).
    # Added by K1: kubectl (client-go) only sends the bearer token over TLS, so kubectl against a
    # token-checking API needs this; the Python client works either way.
    api_tls: bool = False
    # The user name the token authenticates as; Knative's creator/lastModifier annotations carry it.
    user: str = "system:serviceaccount:relayweb:relayweb"
    # The version /version reports. Knative 1.23 refuses to start below v1.34.0
    # (knative/serving knative-v1.23.0 vendor/knative.dev/pkg/version/version.go DefaultKubernetesMinVersion),
    # so a cluster running it is at least that.
    kube_version: str = "1.34.0"
    # RBAC denials: (apiGroup, resource, verb, namespace or None for any) the token may NOT do; denied
    # calls answer 403 Forbidden and SelfSubjectAccessReviews answer allowed=false.
    denied: list = field(default_factory=list)
    # Ambassador: its ambassador_id, and whether AMBASSADOR_KNATIVE_SUPPORT is on (the diag reports both).
    ambassador_id: str = "default"
    knative_support: bool = True

    # Handler container timings (seconds).
    image_pull_delay: float = 1.0        # Pulling -> Pulled
    start_delay: float = 0.5             # Started -> ready (readiness probe passes)
    # Knative autoscaler / deployment timings (seconds).
    stable_window: float = 60.0          # no traffic for this long ...
    scale_to_zero_grace: float = 30.0    # ... plus this -> scale to zero
    progress_deadline: float = 120.0     # image pull back-off / crash -> revision failed after this
    activation_timeout: float = 130.0    # activator gives up on a cold start (progress_deadline + 10 in 0.13)
    queue_depth: int = 10000             # activator breaker queue depth per revision
    # A deleted pod (scale-down, kubectl delete) stays, with deletionTimestamp and not ready, until its
    # containers have exited (queue-proxy drains, the app stops): this long, at most its grace period.
    termination_grace: float = 2.0
    # Ambassador route timeout for Knative mappings (Ambassador >= 1.5 with Knative 1.x: 15 s);
    # None means wait for the revision's timeoutSeconds only.
    route_timeout: float | None = None

    # Watch history kept for resume; older resourceVersions get 410 Gone.
    watch_history: int = 10000
    # etcd compaction, as kube-apiserver's --etcd-compaction-interval (default 5 min) drives it: every
    # interval the history up to the resourceVersion of the previous interval is forgotten (0: never).
    compact_interval: float = 300.0
    # Interval of watch BOOKMARK events when the client asked for them (seconds).
    bookmark_interval: float = 30.0

    # Domain for non-cluster-local services (config-domain default).
    domain: str = "example.com"

    extra: dict = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"
