"""Browser UI for tenants, members and API tokens. Thin: forms in, services do the work."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import hooks, services
from .decorators import tenant_view
from .filters import AuditFilter
from .forms import InvitationForm, MemberRoleForm, TenantCreateForm, TenantSettingsForm, TokenCreateForm
from .models import ApiToken, AuditEntry, Invitation, Membership
from .permissions import Action, allows, tenants_of


def _apply(form, action) -> bool:
    """Run a service for a valid form; service errors become form errors. True on success."""
    if not form.is_valid():
        return False
    try:
        action(form.cleaned_data)
    except ValidationError as e:
        _add_errors(form, e)
        return False
    return True


def _add_errors(form, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@login_required
def tenant_list(request):
    tenants = tenants_of(request.user).prefetch_related("memberships")
    invitations = services.invitations_for(user=request.user)
    return render(request, "tenants/list.html", {"tenants": tenants, "invitations": invitations})


@login_required
def tenant_create(request):
    form = TenantCreateForm(request.POST or None)
    created = {}
    if request.method == "POST" and _apply(
        form, lambda d: created.update(t=services.tenant_create(user=request.user, **d))
    ):
        messages.success(request, f"Tenant “{created['t'].name}” created.")
        return redirect("tenant-detail", slug=created["t"].slug)
    return render(request, "tenants/create.html", {"form": form})


@tenant_view(Action.VIEW)
def tenant_detail(request, tenant):
    # the overview shows the tenant's triggers live (triggers registers them: tenants.hooks)
    return render(request, "tenants/detail.html", {"tenant": tenant, "triggers": hooks.overview(tenant)})


@tenant_view(Action.MANAGE)
def tenant_settings(request, tenant):
    form = TenantSettingsForm(request.POST or None, initial={"name": tenant.name})
    if request.method == "POST" and _apply(
        form, lambda d: services.tenant_update(tenant=tenant, name=d["name"])
    ):
        messages.success(request, "Settings saved.")
        return redirect("tenant-settings", slug=tenant.slug)
    return render(request, "tenants/settings.html", {"tenant": tenant, "form": form})


@require_POST
@tenant_view(Action.MANAGE)
def tenant_delete(request, tenant):
    if request.POST.get("confirm") != tenant.slug:
        messages.error(request, f"Type the slug “{tenant.slug}” to confirm deletion.")
        return redirect("tenant-settings", slug=tenant.slug)
    services.tenant_delete(tenant=tenant)
    messages.success(request, f"Tenant “{tenant.name}” deleted.")
    return redirect("tenant-list")


@require_POST
@tenant_view(Action.MANAGE)
def tenant_provision(request, tenant):
    try:
        services.tenant_provision_retry(tenant=tenant)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, f"Provisioning namespace {tenant.namespace} again.")
    return redirect("tenant-detail", slug=tenant.slug)


@tenant_view(Action.VIEW)
def member_list(request, tenant):
    form = InvitationForm(request.POST or None)
    if request.method == "POST":
        if not allows(request.role, Action.MANAGE):
            messages.error(request, "Only owners can invite members.")
            return redirect("member-list", slug=tenant.slug)
        done = {}
        invite = services.invitation_create
        if _apply(form, lambda d: done.update(i=invite(tenant=tenant, invited_by=request.user, **d))):
            messages.success(request, services.invitation_sent_message(done["i"]))
            return redirect("member-list", slug=tenant.slug)
    can_manage = allows(request.role, Action.MANAGE)
    return render(
        request,
        "tenants/members.html",
        {"tenant": tenant, "memberships": tenant.memberships.select_related("user"), "form": form,
         "can_manage": can_manage, "role_form": MemberRoleForm(),
         "invitations": tenant.invitations.pending().select_related("invited_by") if can_manage else []},
    )


@require_POST
@tenant_view(Action.MANAGE)
def invitation_revoke(request, tenant, pk):
    invitation = get_object_or_404(Invitation, pk=pk, tenant=tenant)
    try:
        services.invitation_revoke(invitation=invitation)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("member-list", slug=tenant.slug)


def _accept(request, invitation):
    try:
        membership = services.invitation_accept(invitation=invitation, user=request.user)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect("tenant-list")
    messages.success(request, f"You are now a member of {membership.tenant.name} ({membership.role}).")
    return redirect("tenant-detail", slug=membership.tenant.slug)


@login_required
def invitation_accept(request, token):
    """The link in the e-mail: shows the invitation, and a POST accepts it as the signed-in user."""
    invitation = Invitation.objects.for_raw(token)
    if request.method == "POST":
        return _accept(request, invitation)
    state = invitation.state if invitation else "unknown"
    if state != "pending":
        problem = services.INVITATION_UNUSABLE[state]
        return render(request, "tenants/invitation.html", {"problem": problem}, status=404)
    return render(request, "tenants/invitation.html", {"invitation": invitation})


@require_POST
@login_required
def invitation_accept_mine(request, pk):
    """Accept from the home page's list: only invitations addressed to the account's e-mail."""
    return _accept(request, get_object_or_404(services.invitations_for(user=request.user), pk=pk))


@tenant_view(Action.MANAGE)
def audit_list(request, tenant):
    filters = AuditFilter(request.GET or None, queryset=AuditEntry.objects.filter(tenant=tenant))
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    actors = AuditEntry.objects.filter(tenant=tenant).order_by().values_list("actor_label", flat=True).distinct()
    return render(request, "tenants/audit.html", {
        "tenant": tenant, "page": page, "filters": filters, "actors": sorted(actors),
        "filtered": any(request.GET.get(f) for f in filters.filters),
    })


def _member_action(request, tenant, pk, action, done: str):
    membership = get_object_or_404(Membership, pk=pk, tenant=tenant)
    try:
        action(membership)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, done.format(user=membership.user.username))
    return redirect("member-list", slug=tenant.slug)


@require_POST
@tenant_view(Action.MANAGE)
def member_role(request, tenant, pk):
    role = request.POST.get("role", "")
    return _member_action(
        request, tenant, pk,
        lambda m: services.membership_set_role(membership=m, role=role),
        "{user} is now " + role + ".",
    )


@require_POST
@tenant_view(Action.MANAGE)
def member_remove(request, tenant, pk):
    return _member_action(
        request, tenant, pk, lambda m: services.membership_remove(membership=m), "{user} removed."
    )


@login_required
def token_list(request):
    form = TokenCreateForm(request.POST or None)
    created = {}
    if request.method == "POST" and _apply(
        form, lambda d: created.update(pair=services.token_create(user=request.user, name=d["name"]))
    ):
        form = TokenCreateForm()
    tokens = ApiToken.objects.filter(user=request.user)
    new_token = created["pair"][1] if created else None
    return render(request, "tenants/tokens.html", {"tokens": tokens, "form": form, "new_token": new_token})


@require_POST
@login_required
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token-list")
