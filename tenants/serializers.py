from __future__ import annotations

from rest_framework import serializers

from relayweb.api import StrictFieldsMixin

from . import services
from .models import SLUG_MAX_LENGTH, ApiToken, AuditEntry, Invitation, Membership, Role, Tenant, slug_validator


class TenantSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    slug = serializers.CharField(
        max_length=SLUG_MAX_LENGTH,
        validators=[slug_validator],
        help_text="DNS label (a-z, 0-9, '-'), at most 30 characters; fixed after creation.",
    )
    role = serializers.SerializerMethodField(help_text="Your role in this tenant.")

    class Meta:
        model = Tenant
        fields = ["slug", "name", "namespace", "state", "message", "role", "created_at"]
        read_only_fields = ["namespace", "state", "message", "created_at"]

    def get_role(self, tenant: Tenant) -> str | None:
        return getattr(tenant, "my_role", None)

    def validate_slug(self, value: str) -> str:
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug cannot change after creation.")
        return value

    def create(self, validated_data) -> Tenant:
        tenant = services.tenant_create(user=self.context["request"].user, **validated_data)
        tenant.my_role = Role.OWNER
        return tenant

    def update(self, tenant: Tenant, validated_data) -> Tenant:
        return services.tenant_update(tenant=tenant, name=validated_data.get("name", tenant.name))


class MembershipSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", help_text="The member's username.")
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = ["created_at"]

    def validate_username(self, value: str) -> str:
        if self.instance is not None and value != self.instance.user.username:
            raise serializers.ValidationError("The member cannot change; remove and add instead.")
        return value

    def update(self, membership: Membership, validated_data) -> Membership:
        return services.membership_set_role(
            membership=membership, role=validated_data.get("role", membership.role)
        )


class InvitationSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    email = serializers.CharField(max_length=254, help_text="Address to send the invitation link to.")
    role = serializers.ChoiceField(choices=Role.choices)
    state = serializers.CharField(read_only=True, help_text="pending, accepted, revoked or expired.")
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    detail = serializers.SerializerMethodField(help_text="What happened, in words.")

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "state", "invited_by", "created_at", "expires_at", "detail"]
        read_only_fields = ["id", "created_at", "expires_at"]

    def get_detail(self, invitation: Invitation) -> str:
        return services.invitation_sent_message(invitation)

    def create(self, validated_data) -> Invitation:
        return services.invitation_create(
            tenant=self.context["tenant"], invited_by=self.context["request"].user, **validated_data
        )


class MyInvitationSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "tenant", "tenant_name", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields


class InvitationAcceptSerializer(StrictFieldsMixin, serializers.Serializer):
    token = serializers.CharField(max_length=200, help_text="The token from the invitation link.")


class AcceptedSerializer(serializers.Serializer):
    tenant = serializers.CharField(help_text="Slug of the tenant you are now a member of.")
    role = serializers.CharField(help_text="Your role in it.")


class ApiTokenSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    token = serializers.SerializerMethodField(
        help_text="The token itself: returned only in the response that creates it."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "token"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at"]

    def get_token(self, token: ApiToken) -> str | None:
        return getattr(token, "raw", None)

    def create(self, validated_data) -> ApiToken:
        token, raw = services.token_create(user=self.context["request"].user, name=validated_data["name"])
        token.raw = raw
        return token


class AuditActorSerializer(serializers.Serializer):
    username = serializers.CharField(source="actor_label", help_text='The user, or "system" for background work.')
    token_name = serializers.CharField(help_text="The API token used, if any (empty otherwise).")
    token_prefix = serializers.CharField()


class AuditTargetSerializer(serializers.Serializer):
    type = serializers.CharField(source="target_type")
    id = serializers.CharField(source="target_id")
    label = serializers.CharField(source="target_label", help_text="Kept after the target is deleted.")


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = AuditActorSerializer(source="*", read_only=True)
    target = AuditTargetSerializer(source="*", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["action", "actor", "target", "created_at", "source", "changes"]
        read_only_fields = fields
