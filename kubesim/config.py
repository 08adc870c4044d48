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
    # Knative Serving's release, as its release manifests label the knative-serving namespace
    # (app.kubernetes.io/version; "" leaves the label out), and whether its CRDs are installed
    # (serving-crds.yaml: without them no *.knative.dev API group is served, discovery included).
    knative_version: str = "1.23.0"
    knative_crds: bool = True
    # RBAC denials: (apiGroup, resource, verb, namespace or None for any) the token may NOT do; denied
    # calls answer 403 Forbidden and SelfSubjectAccessReviews answer allowed=false.
    denied: list = field(default_factory=list)
    # Ambassador: its ambassador_id, and whether AMBASSADOR_KNATIVE_SUPPORT is on (the diag reports both).
    ambassador_id: str = "default"
    knative_support: bool = True

    # Handler container timings (seconds).
    image_pull_delay: float = 1.0        # Pulling -> Pulled
    start_delay: float = 0.5             # Started -> ready (readiness probe passes)
    # Knative autoscaler / deployment timings (seconds): Knative 1.x's defaults. config-autoscaler
    # (knative/serving knative-v1.23.0 config/core/configmaps/autoscaler.yaml, the fixture
    # knative-serving-knative-v1.23.0-config-autoscaler.yaml): stable-window 60s,
    # scale-to-zero-grace-period 30s; config-deployment progress-deadline 600s
    # (pkg/deployment/config.go ProgressDeadlineDefault, "matches the K8s default value of 600s").
    # A revision's `serving.knative.dev/progress-deadline` annotation overrides progress_deadline.
    stable_window: float = 60.0          # no traffic for this long ...
    scale_to_zero_grace: float = 30.0    # ... plus this -> scale to zero
    progress_deadline: float = 600.0     # image pull back-off / crash -> revision failed after this
    # The KPA gives up on a cold start after the progress deadline + activationTimeoutBuffer (30 s)
    # (pkg/reconciler/autoscaling/kpa/scaler.go). With the annotation, its deadline + 30 s; set
    # explicitly, this fixed value is used instead.
    activation_timeout: float | None = None
    queue_depth: int = 10000             # activator breaker queue depth per revision
    # A deleted pod (scale-down, kubectl delete) stays, with deletionTimestamp and not ready, until its
    # containers have exited (queue-proxy drains, the app stops): this long, at most its grace period.
    termination_grace: float = 2.0
    # Emissary's route timeout for Knative Mappings: `timeout_ms` = the KIngress path's `timeout`, else
    # 15 s (emissary v1.14.4 python/ambassador/fetch/knative.py KnativeIngressProcessor._emit_mapping,
    # unchanged in v3.9.1); Knative 1.x KIngress paths have no timeout, so every Knative route gets 15 s.
    # None: no route timeout (only the revision's timeoutSeconds).
    route_timeout: float | None = 15.0
    # Envoy is programmed a little after Emissary marks a KIngress Ready (Emissary writes the status
    # once it has generated the Mappings, before Envoy has loaded them): a host answers Envoy's empty
    # 404 for this long after its KIngress became Ready.
    route_ready_delay: float = 1.0

    # Watch history kept for resume; older resourceVersions get 410 Gone.
    watch_history: int = 10000
    # etcd compaction, as kube-apiserver's --etcd-compaction-interval (default 5 min) drives it: every
    # interval the history up to the resourceVersion of the previous interval is forgotten (0: never).
    compact_interval: float = 300.0
    # Interval of watch BOOKMARK events when the client asked for them (seconds).
    bookmark_interval: float = 30.0

    # Feature gate PodLogsQuerySplitStreams: whether `pods/log` honours `stream=All|Stdout|Stderr`
    # (round2-facts.md §1.1). Upstream it is Alpha and off by default from 1.32 through 1.34 (kube
    # pkg/features/versioned_kube_features.go, code index: {1.32, Default: false, Alpha}); kubesim turns it on so
    # clients can read a handler's stderr alone. Off: the parameter is ignored (both streams are returned),
    # as the apiserver's LogLocation does not forward it to the kubelet then (kubesim.podlogs.parse_options).
    pod_logs_split_streams: bool = True

    # Domain for non-cluster-local services (config-domain default).
    domain: str = "example.com"

    # Free-form settings without a flag of their own. "config-gc": a dict with config-gc's keys and
    # string values (retain-since-create-time, retain-since-last-active-time, min-non-active-revisions,
    # max-non-active-revisions; "disabled" turns one off), the revision GC's settings before a `config-gc`
    # ConfigMap in knative-serving overrides them key by key; Knative's defaults otherwise (48h, 15h,
    # 20, 1000: knative/serving knative-v1.23.0 pkg/gc/config.go:61-68). Tests shorten GC with it.
    extra: dict = field(default_factory=dict)

    def activation_timeout_for(self, progress_deadline: float | None = None) -> float:
        """The KPA's activation timeout for a revision (its own progress deadline, if annotated)."""
        if self.activation_timeout is not None:
            return self.activation_timeout
        return (self.progress_deadline if progress_deadline is None else progress_deadline) + 30.0

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"
