from .permissions import tenants_of


def tenants(request):
    """The tenant switcher: every tenant the signed-in user belongs to."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"my_tenants": lambda: list(tenants_of(user).only("slug", "name"))}
