"""API: /api/v1/tenants/, …/<slug>/members/, …/<slug>/invitations/, /api/v1/invitations/, /api/v1/tokens/."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from . import services
from .filters import AuditFilter, MembershipFilter, TenantFilter
from .models import ApiToken, AuditEntry, Invitation, Membership, Tenant
from .permissions import Action, can, tenants_of
from .serializers import (
    AcceptedSerializer,
    ApiTokenSerializer,
    AuditEntrySerializer,
    InvitationAcceptSerializer,
    InvitationSerializer,
    MembershipSerializer,
    MyInvitationSerializer,
    TenantSerializer,
)

READ_METHODS = permissions.SAFE_METHODS


class TenantAccess(permissions.BasePermission):
    """Members read; owners change or delete the tenant. Non-members never see it (404)."""

    def has_object_permission(self, request, view, tenant) -> bool:
        action = Action.VIEW if request.method in READ_METHODS else Action.MANAGE
        return can(request.user, tenant, action)


class TenantViewSet(viewsets.ModelViewSet):
    serializer_class = TenantSerializer
    permission_classes = [permissions.IsAuthenticated, TenantAccess]
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    filterset_class = TenantFilter
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name", "created_at"]
    ordering = ["slug"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Tenant.objects.none()
        user = self.request.user
        my_role = Membership.objects.filter(tenant=OuterRef("pk"), user=user).values("role")[:1]
        return tenants_of(user).annotate(my_role=Subquery(my_role))

    def destroy(self, request, *args, **kwargs):
        """Deletion runs in the background: 202, the tenant shows `state: deleting` until it is gone."""
        tenant = services.tenant_delete(tenant=self.get_object())
        return Response(self.get_serializer(tenant).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TenantSerializer})
    @action(detail=True, methods=["post"])
    def provision(self, request, *args, **kwargs):
        """Retry provisioning the namespace of a tenant whose provisioning failed (owners)."""
        tenant = services.tenant_provision_retry(tenant=self.get_object())
        return Response(self.get_serializer(tenant).data, status=status.HTTP_202_ACCEPTED)


class TenantScoped:
    """Views under /api/v1/tenants/<tenant_slug>/…: resolve the tenant first.

    A non-member gets 404 (the tenant stays invisible); a member without the role for a write, 403.
    `write_action` is what unsafe methods need; reads need Action.VIEW.
    """

    write_action = Action.MANAGE

    def initial(self, request, *args, **kwargs) -> None:
        self.tenant = None
        self.perform_authentication(request)
        if request.user.is_authenticated:
            self.tenant = get_object_or_404(tenants_of(request.user), slug=kwargs.get("tenant_slug"))
        super().initial(request, *args, **kwargs)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "tenant": getattr(self, "tenant", None)}


class TenantRole(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        action = Action.VIEW if request.method in READ_METHODS else view.write_action
        return view.tenant is not None and can(request.user, view.tenant, action)


tenant_param = OpenApiParameter("tenant_slug", str, OpenApiParameter.PATH, description="Tenant slug.")


def with_tenant_param(*actions: str):
    """Document the tenant_slug path parameter on every action of a tenant-scoped viewset."""
    names = actions or ("list", "create", "retrieve", "update", "partial_update", "destroy")
    return extend_schema_view(**{name: extend_schema(parameters=[tenant_param]) for name in names})


@with_tenant_param("list", "retrieve", "update", "partial_update", "destroy")
@extend_schema_view(create=extend_schema(
    parameters=[tenant_param], request=InvitationSerializer, responses={202: InvitationSerializer},
    description="Invite someone by e-mail (the same as POST …/invitations/). Nobody joins without accepting: "
    "the answer is 202 and the same whether or not the address has an account.",
))
class MembershipViewSet(TenantScoped, viewsets.ModelViewSet):
    """Members list members; owners invite, change roles and remove them."""

    serializer_class = MembershipSerializer
    permission_classes = [permissions.IsAuthenticated, TenantRole]
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[\w.@+-]+"  # Django's username characters
    filterset_class = MembershipFilter
    search_fields = ["user__username", "user__email"]
    ordering_fields = ["user__username", "role", "created_at"]
    ordering = ["user__username"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Membership.objects.none()
        return Membership.objects.filter(tenant=self.tenant).select_related("user")

    def create(self, request, *args, **kwargs):
        serializer = InvitationSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, membership) -> None:
        services.membership_remove(membership=membership)


class OwnersOnly(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return view.tenant is not None and can(request.user, view.tenant, Action.MANAGE)


@with_tenant_param("list", "create", "retrieve", "destroy")
@extend_schema_view(
    create=extend_schema(responses={202: InvitationSerializer}),
    destroy=extend_schema(description="Revoke a pending invitation: its link stops working."),
)
class InvitationViewSet(
    TenantScoped,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Owners invite by e-mail, list pending invitations and revoke them. Others get 403 (non-members 404)."""

    serializer_class = InvitationSerializer
    permission_classes = [permissions.IsAuthenticated, OwnersOnly]
    filterset_fields = ["role"]
    search_fields = ["email"]
    ordering_fields = ["created_at", "email", "expires_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return Invitation.objects.none()
        return self.tenant.invitations.pending().select_related("invited_by", "tenant")

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        response.status_code = status.HTTP_202_ACCEPTED  # sent, not joined: the invitee still has to accept
        return response

    def perform_destroy(self, invitation) -> None:
        services.invitation_revoke(invitation=invitation)


class MyInvitationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Pending invitations to your account's e-mail address; accept one with its link's token."""

    serializer_class = MyInvitationSerializer
    filterset_fields = []
    search_fields = []
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return services.invitations_for(user=self.request.user)

    @extend_schema(request=InvitationAcceptSerializer, responses={200: AcceptedSerializer})
    @action(detail=False, methods=["post"])
    def accept(self, request):
        """Accept an invitation with the token from its link, as the signed-in user (single use)."""
        body = InvitationAcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = Invitation.objects.for_raw(body.validated_data["token"])
        membership = services.invitation_accept(invitation=invitation, user=request.user)
        return Response({"tenant": membership.tenant.slug, "role": membership.role})


@with_tenant_param("list")
class AuditViewSet(TenantScoped, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The tenant's audit log, newest first (owners only)."""

    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated, OwnersOnly]
    filterset_class = AuditFilter
    search_fields = []
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-pk"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False) or self.tenant is None:
            return AuditEntry.objects.none()
        return AuditEntry.objects.filter(tenant=self.tenant)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your personal API tokens. The token value is shown once, in the create response."""

    serializer_class = ApiTokenSerializer
    ordering_fields = ["created_at", "name", "last_used_at"]
    search_fields = ["name"]
    filterset_fields = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def perform_destroy(self, token) -> None:
        services.token_revoke(token=token)



