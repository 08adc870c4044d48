from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from relayweb.api import StrictFieldsMixin
from triggers import services
from triggers.deliveries import stats
from triggers.live import badge
from triggers.models import NAME_MAX_LENGTH, Deployment, ScaleEvent, Trigger


class EnvVarSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    value = serializers.CharField(allow_blank=True, max_length=32768, trim_whitespace=False)


class DeploymentSerializer(serializers.ModelSerializer):
    trigger = serializers.CharField(source="trigger.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Deployment
        fields = ["id", "trigger", "kind", "spec_version", "redeploy", "status", "reason", "message", "generation",
                  "revision", "attempts", "created_by", "created_at", "applied_at", "finished_at"]
        read_only_fields = fields


class TriggerStatusSerializer(serializers.Serializer):
    ready = serializers.CharField(source="ready_status", help_text="Knative's Ready condition: True, False, Unknown.")
    reason = serializers.CharField(source="ready_reason")
    message = serializers.CharField(source="ready_message")
    url = serializers.CharField()
    address_url = serializers.CharField(help_text="Cluster-local address of the Knative Service.")
    latest_created_revision = serializers.CharField()
    latest_ready_revision = serializers.CharField()
    serving_old_revision = serializers.BooleanField(
        help_text="True when the newest revision failed and traffic stays on the last ready one."
    )
    observed_at = serializers.DateTimeField(allow_null=True)


class PodSerializer(serializers.Serializer):
    name = serializers.CharField()
    phase = serializers.CharField(allow_blank=True)
    ready = serializers.BooleanField()
    restarts = serializers.IntegerField()
    reason = serializers.CharField(allow_blank=True)


class TriggerLiveSerializer(serializers.Serializer):
    """What the watcher observed, as the pages show it (the same badge as the websocket)."""

    badge = serializers.SerializerMethodField(help_text="not_deployed, deploying, ready, scaled_to_zero, "
                                                        "activating, failed, suspended or deleting.")
    text = serializers.SerializerMethodField(help_text='The badge as people read it, e.g. "Ready (2 pods)".')
    ready_pods = serializers.IntegerField(allow_null=True, help_text="Ready pods of the serving revision (null: "
                                                                     "not observed yet).")
    desired = serializers.IntegerField(source="desired_replicas", allow_null=True)
    actual = serializers.IntegerField(source="actual_replicas", allow_null=True)
    active = serializers.CharField(source="active_status", help_text="Knative's Active condition: True, False, "
                                                                     "Unknown or empty.")
    active_reason = serializers.CharField(help_text="NoTraffic (scaled to zero), Queued (activating), TimedOut…")
    active_since = serializers.DateTimeField(allow_null=True)
    pods = serializers.SerializerMethodField()

    def get_badge(self, trigger: Trigger) -> str:
        return badge.badge(trigger)[0]

    def get_text(self, trigger: Trigger) -> str:
        return badge.badge(trigger)[1]

    @extend_schema_field(PodSerializer(many=True))
    def get_pods(self, trigger: Trigger) -> list[dict]:
        keys = {"name": "", "phase": "", "ready": False, "restarts": 0, "reason": ""}
        return [{k: (pod.get(k) if pod.get(k) is not None else d) for k, d in keys.items()}
                for pod in trigger.pods or [] if isinstance(pod, dict)]


class TriggerSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, help_text="DNS-1035 label; the Knative Service name.")
    env = EnvVarSerializer(many=True, required=False, help_text="Plain environment variables.")
    secret_env = serializers.JSONField(
        read_only=True, help_text="Names of secret variables and when each was set; values are never returned."
    )
    secret_values = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True, trim_whitespace=False),
        write_only=True, required=False,
        help_text='Write-only: {"NAME": "value"} sets secret variables (stored only in a Kubernetes Secret); '
                  "null removes one.",
    )
    target_concurrency = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10000)
    state = serializers.CharField(read_only=True)
    status = TriggerStatusSerializer(source="*", read_only=True)
    last_deployment = DeploymentSerializer(read_only=True, allow_null=True)
    live = TriggerLiveSerializer(source="*", read_only=True,
                                 help_text="The observed live state: badge, pods, activation.")
    # The webhook edge (ingress). The verification secret is write-only: only whether one is set comes back.
    webhook_url = serializers.SerializerMethodField(
        help_text="The public URL senders call (RELAY_HOOKS_URL/hooks/<token>).")
    previous_webhook_url_expires_at = serializers.SerializerMethodField(
        help_text="After rotate-token: until when the previous webhook URL keeps working (null: none)."
    )
    verification_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        max_length=services.MAX_VERIFICATION_SECRET,
        help_text="Write-only: the signing secret for the chosen verification (encrypted at rest). "
                  "Empty or absent keeps the stored one.",
    )
    verification_secret_set = serializers.SerializerMethodField(help_text="Whether a verification secret is stored.")

    class Meta:
        model = Trigger
        fields = ["name", "image", "port", "env", "secret_env", "secret_values", "min_scale", "max_scale",
                  "target_concurrency", "timeout_seconds", "suspended", "spec_version", "state", "status",
                  "live", "last_deployment", "created_at", "updated_at",
                  "webhook_url", "previous_webhook_url_expires_at", "mode", "verification", "verification_secret",
                  "verification_secret_set", "hmac_header", "hmac_encoding", "hmac_prefix", "dedupe_header",
                  "max_attempts"]
        read_only_fields = ["suspended", "spec_version", "created_at", "updated_at"]
        extra_kwargs = {
            "max_attempts": {"min_value": 1, "max_value": 20},
            "hmac_header": {"help_text": "Generic HMAC: the header carrying the signature."},
            "hmac_prefix": {"help_text": "Generic HMAC: a prefix before the signature, e.g. sha256=."},
            "port": {"min_value": 1, "max_value": 65535},
            "min_scale": {"min_value": 0, "max_value": 1000},
            "max_scale": {"min_value": 1, "max_value": 1000},
            "timeout_seconds": {"min_value": 1, "max_value": 600},
        }

    def get_webhook_url(self, trigger: Trigger) -> str:
        return services.trigger_webhook_url(trigger)

    def get_previous_webhook_url_expires_at(self, trigger: Trigger) -> datetime | None:
        expires = trigger.previous_token_expires_at
        return expires if trigger.previous_token and expires and expires > timezone.now() else None

    def get_verification_secret_set(self, trigger: Trigger) -> bool:
        return bool(trigger.verification_secret)

    def validate_name(self, value: str) -> str:
        if self.instance is not None and value != self.instance.name:
            raise serializers.ValidationError("The name cannot change (it is the Knative Service name).")
        return value

    def create(self, data) -> Trigger:
        return services.trigger_create(
            tenant=self.context["tenant"], user=self.context["request"].user,
            secret_values=data.pop("secret_values", None), **data,
        )

    def update(self, trigger: Trigger, data) -> Trigger:
        data.pop("name", None)
        return services.trigger_update(trigger=trigger, secret_values=data.pop("secret_values", None), **data)


class ScaleEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScaleEvent
        fields = ["at", "cause", "cold_start_ms"]
        read_only_fields = fields

    def get_fields(self):
        # "from" is a Python keyword: declared here rather than as class attributes
        return {"from": serializers.IntegerField(source="from_pods", read_only=True),
                "to": serializers.IntegerField(source="to_pods", read_only=True), **super().get_fields()}


class WindowSerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(stats.WINDOWS), default=stats.DEFAULT_WINDOW)


class StatsSerializer(serializers.Serializer):
    deliveries = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Deliveries that ended failed or dead.")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    cold_starts = serializers.IntegerField(help_text="Activations from zero pods (the watcher's scale events).")
    cold_start_p50_ms = serializers.FloatField(allow_null=True)
    pod_seconds = serializers.FloatField(help_text="Ready pods integrated over the window.")
    always_on_pod_seconds = serializers.FloatField(
        help_text="The same span with max(1, min_scale) pods always on (from the trigger's creation if later).")


class TriggerStatsSerializer(StatsSerializer):
    window = serializers.CharField()
    trigger = serializers.CharField()


class TenantTriggerStatsSerializer(StatsSerializer):
    trigger = serializers.CharField()


class TenantStatsSerializer(serializers.Serializer):
    window = serializers.CharField()
    totals = StatsSerializer()
    triggers = TenantTriggerStatsSerializer(many=True)
