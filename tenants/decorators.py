from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .permissions import Action, allows, role_of, tenants_of


def tenant_view(action: Action):
    """Resolve `slug` to a tenant the user belongs to (404 otherwise) and require `action` (403)."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            tenant = get_object_or_404(tenants_of(request.user), slug=slug)
            role = role_of(request.user, tenant)
            if not allows(role, action):
                raise PermissionDenied
            request.tenant, request.role = tenant, role
            return view(request, tenant, *args, **kwargs)

        return wrapper

    return decorator
