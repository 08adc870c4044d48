"""Sign-in pages: throttled sign-in (this site's and the admin's), password reset by e-mail, password change.

Django's own views and forms; templates in templates/registration/. Throttling in tenants/throttle.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse_lazy

from . import throttle


def throttled_signin(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A sign-in view that answers 429 once its username or the client's address has failed too often.

    A POST that is answered with the form again (200) is a failure; one that signed in as the username given
    clears that username's count."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        keys = [throttle.address_key("signin", throttle.client_address(request))]
        if username.strip():
            keys.append(throttle.username_key(username))
        wait = throttle.blocked_for(*keys)
        if wait:
            return too_many_attempts(request, wait)
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            throttle.record_failure(*keys)
        elif _signed_in_as(request, username):  # not merely redirected because already signed in as another
            throttle.clear(throttle.username_key(username))
        return response

    return wrapper


def counted_per_address(scope: str, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A form whose every POST counts against the client's address (password-reset e-mails: one address
    cannot make the site mail someone without end)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        key = throttle.address_key(scope, throttle.client_address(request))
        wait = throttle.blocked_for(key)
        if wait:
            return too_many_attempts(request, wait)
        throttle.record_failure(key)
        return view(request, *args, **kwargs)

    return wrapper


def _signed_in_as(request: HttpRequest, username: str) -> bool:
    user = getattr(request, "user", None)
    return bool(username.strip() and user is not None and user.is_authenticated
                and throttle.username_key(user.get_username()) == throttle.username_key(username))


def too_many_attempts(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(request, "registration/throttled.html", {"message": throttle.message(wait)}, status=429)
    response["Retry-After"] = str(wait)
    return response


urlpatterns = [
    path("login/", throttled_signin(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password-reset/", counted_per_address("reset", auth_views.PasswordResetView.as_view(
        success_url=reverse_lazy("password_reset_done"))), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
