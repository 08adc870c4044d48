"""Triggers (a tenant's webhook handler: an image run as a Knative Service) and their deployments."""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from triggers.security import signatures

# DNS-1035 label (the ksvc name): starts with a letter, ends with a letter or digit.
NAME_MAX_LENGTH = 40
name_validator = RegexValidator(
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens, starting with a letter and ending with a letter or digit "
    "(it becomes the Knative Service name).",
    code="invalid_name",
)
# Knative refuses these (knative/serving pkg/apis/serving/k8s_validation.go reservedPorts): queue-proxy's
# HTTP/1 8012 and HTTP/2 8013 backends, its admin 8022, metrics 9090/9091, and the profiling port 8008.
RESERVED_PORTS = (8008, 8012, 8013, 8022, 9090, 9091)
RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")


def new_token() -> str:
    """The public webhook token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


class TriggerQuerySet(models.QuerySet):
    def live(self):
        return self.filter(deleting=False)


class Trigger(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="triggers")
    name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[name_validator])
    image = models.CharField(max_length=512)
    port = models.PositiveIntegerField(default=8080)
    env = models.JSONField(default=list, blank=True, help_text='[{"name": "X", "value": "1"}, …]')
    # Secret env: only names and when each was set; the values live in the Kubernetes Secret.
    secret_env = models.JSONField(default=dict, blank=True, help_text='{"NAME": {"set_at": "…"}}')
    secret_version = models.PositiveIntegerField(default=0)
    min_scale = models.PositiveIntegerField(default=0)
    max_scale = models.PositiveIntegerField(default=3)
    target_concurrency = models.PositiveIntegerField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    suspended = models.BooleanField(default=False)
    deleting = models.BooleanField(default=False, editable=False)

    # The webhook edge (ingress).
    class Mode(models.TextChoices):
        SYNC = "sync", "Sync: the sender gets the handler's response"
        ASYNC = "async", "Async: 202 once stored, delivered with retries"

    class Verification(models.TextChoices):
        NONE = "none", "None"
        GITHUB = "github", "GitHub (X-Hub-Signature-256)"
        STRIPE = "stripe", "Stripe (Stripe-Signature)"
        SLACK = "slack", "Slack (X-Slack-Signature)"
        HMAC = "hmac", "Generic HMAC-SHA256"

    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.SYNC)
    verification = models.CharField(max_length=10, choices=Verification.choices, default=Verification.NONE)
    verification_secret = models.TextField(blank=True, default="", editable=False, help_text="Encrypted at rest.")
    hmac_header = models.CharField(max_length=100, blank=True, default="X-Signature")
    hmac_encoding = models.CharField(max_length=6, choices=[("hex", "hex"), ("base64", "base64")], default="hex")
    hmac_prefix = models.CharField(max_length=20, blank=True, default="")
    dedupe_header = models.CharField(max_length=100, blank=True, default="",
                                     help_text="Header carrying the sender's delivery id, e.g. Idempotency-Key.")
    max_attempts = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(20)])
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    previous_token = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)
    previous_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    spec_version = models.PositiveIntegerField(default=0, editable=False)
    # Traffic: [] = Knative's default, 100 % to the latest ready revision; else the targets as the
    # API takes them, [{"revision": "<name>-00001" | None, "latest": bool, "percent": int, "tag": str}], rendered
    # to the ksvc's spec.traffic (triggers/cluster/kube.py) and applied by the deploy task.
    traffic = models.JSONField(default=list, blank=True)
    # Knative's view of it (ksvc status.traffic, as the status code observed it): [{revisionName, percent, tag,
    # latestRevision, url}].
    traffic_status = models.JSONField(default=list, blank=True, editable=False)
    # Set by "redeploy": stamped on the pod template so Knative makes a new revision (moved tags).
    redeploy_stamp = models.CharField(max_length=40, blank=True, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Observed state of the ksvc (written by the status code shared by the deploy poll and the watcher).
    ready_status = models.CharField(max_length=8, blank=True, default="")  # True / False / Unknown
    ready_reason = models.CharField(max_length=100, blank=True, default="")
    ready_message = models.TextField(blank=True, default="")
    url = models.CharField(max_length=300, blank=True, default="")
    address_url = models.CharField(max_length=300, blank=True, default="")
    latest_created_revision = models.CharField(max_length=100, blank=True, default="")
    latest_ready_revision = models.CharField(max_length=100, blank=True, default="")
    observed_generation = models.BigIntegerField(null=True, blank=True)
    generation = models.BigIntegerField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    # Observed by the cluster watcher: the serving revision's replicas, Active condition and pods.
    ready_pods = models.IntegerField(null=True, blank=True)
    desired_replicas = models.IntegerField(null=True, blank=True)
    actual_replicas = models.IntegerField(null=True, blank=True)
    active_status = models.CharField(max_length=8, blank=True, default="")  # True / False / Unknown
    active_reason = models.CharField(max_length=100, blank=True, default="")  # NoTraffic, Queued, TimedOut
    active_since = models.DateTimeField(null=True, blank=True)
    pods = models.JSONField(default=list, blank=True)  # [{name, phase, ready, restarts, reason}]

    objects = TriggerQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="trigger_name_unique_in_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"

    @property
    def namespace(self) -> str:
        return self.tenant.namespace

    @property
    def secret_name(self) -> str:
        return f"{self.name}-env"

    @property
    def is_ready(self) -> bool:
        return self.ready_status == "True" and self.observed_generation == self.generation

    @property
    def gateway_host(self) -> str:
        """The ksvc's cluster-local host (from status.address.url): the Host the gateway routes on."""
        return (urlsplit(self.address_url).hostname or "") if self.address_url else ""

    @property
    def servable(self) -> bool:
        """Webhooks can be forwarded: the ksvc has an address and a revision that became ready."""
        return bool(self.gateway_host and self.latest_ready_revision)

    @property
    def serving_old_revision(self) -> bool:
        """A broken update: the new revision failed and traffic stays on the last ready one."""
        return bool(
            self.ready_status == "False"
            and self.latest_ready_revision
            and self.latest_created_revision != self.latest_ready_revision
        )

    @property
    def last_deployment(self) -> Deployment | None:
        return self.deployments.order_by("-created_at", "-pk").first()

    @property
    def state(self) -> str:
        """One word for UI, API and websockets: deleting, suspended, not_deployed, deploying, ready, failed."""
        if self.deleting:
            return "deleting"
        if self.suspended:
            return "suspended"
        last = self.last_deployment
        if last is None:
            return "not_deployed"
        if last.active:
            return "deploying"
        if self.is_ready:
            return "ready"
        if last.status in (Deployment.Status.FAILED, Deployment.Status.ERROR) or self.ready_status == "False":
            return "failed"
        return "deploying"


class Deployment(models.Model):
    """One apply of a trigger's spec version, from request to Knative's verdict."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLYING = "applying", "Applying"
        WAITING = "waiting", "Waiting for Knative"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"        # Knative rejected it or could not run it
        ERROR = "error", "Error"           # we could not talk to the cluster
        SUPERSEDED = "superseded", "Superseded"

    ACTIVE = (Status.PENDING, Status.APPLYING, Status.WAITING)
    TERMINAL = (Status.READY, Status.FAILED, Status.ERROR, Status.SUPERSEDED)

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "Deploy"      # the spec: a new revision when the template changed
        TRAFFIC = "traffic", "Traffic"   # only the traffic (a split, a rollback): judged by the Route alone

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="deployments")
    spec_version = models.PositiveIntegerField()
    redeploy = models.BooleanField(default=False)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DEPLOY)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=100, blank=True, default="")
    message = models.TextField(blank=True, default="")
    generation = models.BigIntegerField(null=True, blank=True)
    revision = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    # The ksvc as applied (no secret values in it): what reconcile restores.
    manifest = models.JSONField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.trigger} v{self.spec_version} {self.status}"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    def finish(self, status: str, *, reason: str = "", message: str = "") -> None:
        self.status, self.reason, self.message = status, reason[:100], message
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "reason", "message", "finished_at"])


class Delivery(models.Model):
    """One inbound webhook: what arrived, what we did with it, and what the handler answered."""

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        FORWARDED = "forwarded", "Forwarded"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RETRYING = "retrying", "Retrying"
        DEAD = "dead", "Dead"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"  # its trigger was suspended or deleted: no further attempt

    PENDING = (State.RECEIVED, State.RETRYING)
    IN_FLIGHT = (State.RECEIVED, State.RETRYING, State.FORWARDED)  # may still reach the handler
    RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})  # worth another attempt
    # An async delivery still to be attempted (forwarded: an attempt holds its lease, or its worker died).
    ATTEMPTABLE = (State.RECEIVED, State.RETRYING, State.FORWARDED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="deliveries")
    received_at = models.DateTimeField(default=timezone.now)
    mode = models.CharField(max_length=5, choices=Trigger.Mode.choices)
    method = models.CharField(max_length=16)  # the ingress refuses longer methods (triggers/edge/ingress.py)
    path = models.TextField(blank=True, default="")  # bounded by RELAY_MAX_URL_BYTES at the ingress
    query = models.TextField(blank=True, default="")
    headers = models.JSONField(default=list)  # [[name, value], …], sensitive values redacted
    # The redacted values, encrypted (triggers/security/sealed.py), for the attempts and replays: kept while the
    # delivery can still be attempted and for RELAY_CREDENTIALS_RETENTION_HOURS after it was received.
    sealed_headers = models.TextField(blank=True, default="", editable=False)
    body = models.BinaryField(default=bytes)
    body_size = models.PositiveIntegerField(default=0)
    verification = models.CharField(max_length=10, default="none")  # none / passed / failed
    verification_error = models.CharField(max_length=300, blank=True, default="")
    provider_delivery_id = models.CharField(max_length=200, null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=list)
    response_body = models.BinaryField(default=bytes)
    latency_ms = models.FloatField(null=True, blank=True)
    cold_start = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the message for its next attempt was queued; None once a worker took it (or none was queued).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    replay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays")
    # The database could not hold the row as it arrived: values were cut to their column or cleaned of bytes
    # it refuses (NUL, unpaired surrogates); record_note says which (triggers/edge/delivery_writer.py).
    truncated = models.BooleanField(default=False)
    record_note = models.TextField(blank=True, default="")
    # The sender sent this provider delivery id again after the first delivery of it failed: forwarded
    # anew, linked to the first (which keeps the id's unique slot).
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="redeliveries")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "provider_delivery_id"],
                condition=models.Q(provider_delivery_id__isnull=False, redelivery_of__isnull=True),
                name="one_delivery_per_provider_id",
            ),
            # the claim of a redelivery: one at a time may be on its way to the handler
            models.UniqueConstraint(
                fields=["redelivery_of"], condition=models.Q(state__in=["received", "retrying", "forwarded"]),
                name="one_redelivery_in_flight",
            ),
        ]
        indexes = [
            models.Index(fields=["trigger", "-received_at"]),
            models.Index(fields=["state", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.trigger} {self.state}"

    def shown_headers(self) -> list[list[str]]:
        """The request headers as the UI and the API show them (redacted again: rows stored under an older,
        shorter list of sensitive names)."""
        return [list(h) for h in signatures.redact([tuple(h) for h in self.headers])]

    def shown_response_headers(self) -> list[list[str]]:
        return [list(h) for h in signatures.redact([tuple(h) for h in self.response_headers])]

    @property
    def credentials_kept(self) -> bool:
        """Whether the values hidden as [redacted] are still kept (encrypted) for its attempts and replays."""
        return bool(self.sealed_headers)

    def dedupe_outcome(self) -> str:
        """What a repeat of this delivery's provider id gets: "pending" (still on its way, or accepted in
        async mode and still to be attempted: not forwarded again), "final" (succeeded: answered from the
        log) or "failed" (any failure: the handler's own 4xx or 5xx, gateway down, timeout, dead,
        cancelled: forwarded again as a new delivery linked to this one)."""
        if self.state in self.IN_FLIGHT:
            return "pending"
        if self.state == self.State.SUCCEEDED:
            return "final"
        return "failed"

    def attempt_history(self) -> list[DeliveryAttempt]:
        """Every attempt, first to last. A sync delivery's one forward is the delivery's own outcome (status,
        latency, error), kept in its row and not written twice: it is shown here as attempt 1."""
        stored = list(self.attempt_log.all())
        if stored or self.mode != Trigger.Mode.SYNC or not self.attempts:
            return stored
        return [DeliveryAttempt(delivery=self, number=1, started_at=self.received_at, status=self.response_status,
                                latency_ms=self.latency_ms, error=self.error)]


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number")]


class ScaleEvent(models.Model):
    """A change of a trigger's ready pods; activations (0 → N on a queued request) carry the cold-start time."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="scale_events")
    at = models.DateTimeField(default=timezone.now)
    from_pods = models.PositiveIntegerField()
    to_pods = models.PositiveIntegerField()
    cause = models.CharField(max_length=40)  # activation, deploy, scale up, scale down, scaled to zero, pods failed
    cold_start_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["trigger", "-at"])]

    def __str__(self) -> str:
        return f"{self.trigger} {self.from_pods}→{self.to_pods} {self.cause}"


class LogLine(models.Model):
    """One line a handler's container printed, as `pods/{name}/log?timestamps=true` gave it, kept after the pod
    is gone (collected by triggers/cluster/logs.py, pruned by triggers/logs/retention.py)."""

    MAX_CHARS = 8192  # longer lines are cut here; `cut` counts what was dropped

    id = models.BigAutoField(primary_key=True)
    # No database constraint: the collector inserts while a trigger may be deleted, and a deferred foreign key
    # would then fail the *deletion* at commit. Django's CASCADE still deletes a trigger's lines (one DELETE);
    # a line inserted in that instant is an orphan no page can reach, removed by retention.
    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="log_lines", db_index=False,
                                db_constraint=False)
    time = models.DateTimeField()  # the kubelet's timestamp of the line (the stream's time, not ours)
    pod = models.CharField(max_length=253)
    revision = models.CharField(max_length=253, blank=True, default="")
    container = models.CharField(max_length=63, default="user-container")
    stream = models.CharField(max_length=6, blank=True, default="")  # stdout / stderr when split, else ""
    text = models.TextField()
    cut = models.PositiveIntegerField(default=0)  # characters cut from a longer line
    # The first delivery id the line names (handlers log X-Relay-Delivery-Id): a delivery's own lines.
    delivery_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["time", "id"]
        indexes = [
            models.Index(fields=["trigger", "time", "id"], name="logline_trigger_time"),
            models.Index(fields=["delivery_id"], name="logline_delivery",
                         condition=models.Q(delivery_id__isnull=False)),
            models.Index(fields=["time"], name="logline_time"),  # retention: the oldest first
        ]

    def __str__(self) -> str:
        return f"{self.pod} {self.time:%H:%M:%S} {self.text[:60]}"

    PRUNE_BATCH = 10_000  # lines per DELETE: each one a short transaction, read through an index

    @classmethod
    def prune_older(cls, cutoff, *, batch: int = PRUNE_BATCH) -> int:
        """Delete every line older than `cutoff`, oldest first, `batch` at a time (the ids found through the
        time index, then deleted by primary key): no long lock, no table scan. Returns how many."""
        deleted = 0
        while True:
            ids = cls.objects.filter(time__lt=cutoff).order_by("time").values("id")[:batch]
            n = cls.objects.filter(id__in=models.Subquery(ids)).delete()[0]
            deleted += n
            if n < batch:
                return deleted

    @classmethod
    def trim(cls, trigger_id: int, keep: int, *, batch: int = PRUNE_BATCH) -> int:
        """Keep a trigger's newest `keep` lines: the boundary is found by walking `keep` entries of the (trigger,
        time, id) index from the newest, the older lines deleted in batches. Returns how many were deleted."""
        newest_first = cls.objects.filter(trigger_id=trigger_id).order_by("-time", "-id")
        boundary = newest_first.values_list("time", "id")[keep:keep + 1].first()
        if boundary is None:
            return 0
        time, pk = boundary
        older = cls.objects.filter(models.Q(time__lt=time) | models.Q(time=time, id__lte=pk), trigger_id=trigger_id)
        deleted = 0
        while True:
            ids = older.order_by("time", "id").values("id")[:batch]
            n = cls.objects.filter(id__in=models.Subquery(ids)).delete()[0]
            deleted += n
            if n < batch:
                return deleted


class CandidateReplay(models.Model):
    """Recorded deliveries sent again to a trigger's `candidate` tag: never to the sender, never counted
    as deliveries; each result sits beside the delivery's original outcome."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="candidate_replays")
    revision = models.CharField(max_length=100, blank=True, default="")  # the candidate when it was asked for
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["trigger", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.trigger} → {self.revision or 'candidate'} ({self.state})"


class CandidateResult(models.Model):
    """One delivery of a candidate replay: the original outcome (copied, the delivery may be pruned) and the
    candidate's."""

    replay = models.ForeignKey(CandidateReplay, on_delete=models.CASCADE, related_name="results")
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveIntegerField()  # the order asked for
    method = models.CharField(max_length=16, blank=True, default="")
    path = models.TextField(blank=True, default="")
    original_status = models.PositiveIntegerField(null=True, blank=True)
    original_latency_ms = models.FloatField(null=True, blank=True)
    original_body = models.BinaryField(default=bytes)
    candidate_status = models.PositiveIntegerField(null=True, blank=True)
    candidate_latency_ms = models.FloatField(null=True, blank=True)
    candidate_body = models.BinaryField(default=bytes)
    candidate_headers = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")  # why the candidate gave no answer
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["replay", "position"], name="one_result_per_position")]

    def __str__(self) -> str:
        return f"{self.replay_id} #{self.position}: {self.original_status} → {self.candidate_status}"


class ClusterCheck(models.Model):
    """One run of `manage.py check_cluster`: each check's name, ✓/✗, what was seen and the fix."""

    KEEP = 20  # runs kept; the Diag page shows the latest

    ran_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    probe = models.BooleanField(default=False)
    results = models.JSONField(default=list)  # [{"name", "ok", "detail", "fix"}]

    class Meta:
        ordering = ["-ran_at", "-pk"]

    def __str__(self) -> str:
        return f"cluster check {self.ran_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"

    @classmethod
    def record(cls, results: list[dict], *, probe: bool) -> ClusterCheck:
        check = cls.objects.create(ok=all(r["ok"] for r in results), probe=probe, results=results)
        old = cls.objects.order_by("-ran_at", "-pk").values_list("pk", flat=True)[cls.KEEP:]
        cls.objects.filter(pk__in=list(old)).delete()
        return check
