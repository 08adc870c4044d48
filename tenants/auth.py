"""API token authentication: `Authorization: Token <t>` or `Authorization: Bearer <t>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from . import throttle
from .models import ApiToken

KEYWORDS = ("token", "bearer")


class TooManyAttempts(exceptions.APIException):
    """429 with Retry-After (DRF's handler sets it from `wait`), and only our message."""

    status_code = 429
    default_code = "throttled"

    def __init__(self, wait: int):
        super().__init__(throttle.message(wait))
        self.wait = wait


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: expected 'Token <token>' or 'Bearer <token>'."
            )
        key = throttle.address_key("token", throttle.client_address(request))
        wait = throttle.blocked_for(key)
        if wait:  # too many bad tokens from this address: refused before any lookup
            raise TooManyAttempts(wait)
        try:
            raw = header[1].decode()
        except UnicodeError:
            throttle.record_failure(key)
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.for_raw(raw)
        if token is None or not token.user.is_active:
            throttle.record_failure(key)
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        token.touch()
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Token realm="api"'
