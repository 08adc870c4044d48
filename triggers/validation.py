"""Validation of a trigger's spec. Each check raises ValidationError naming its field and what to do."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from .models import RESERVED_ENV, RESERVED_PORTS

# The OCI distribution reference grammar (github.com/distribution/reference).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def image_problem(reference: str) -> str | None:
    """Why `reference` is not a valid OCI image reference, or None when it is."""
    if not reference:
        return "it is empty"
    if len(reference) > 512:
        return "it is longer than 512 characters"
    if any(c.isspace() for c in reference):
        return "it contains white space"
    rest, digest = reference, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not digest.startswith("sha256:") or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            if not _DIGEST_RE.match(digest):
                return f"digest {digest!r} is not '<algorithm>:<hex>' (e.g. sha256: and 64 hex digits)"
            if digest.startswith("sha256:"):
                return "a sha256 digest has exactly 64 lowercase hex digits"
    name, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = rest.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            return f"tag {tag!r} may use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')"
    if not name:
        return "the repository name is missing"
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain, path = parts[0], "/".join(parts[1:])
        if not _DOMAIN_RE.match(domain):
            return f"registry {domain!r} is not a valid host[:port]"
    else:
        path = name
    if len(name) > 255:
        return "the repository name is longer than 255 characters"
    if path != path.lower():
        return f"repository {path!r} must be lowercase"
    if not _PATH_RE.match(path):
        return f"repository {path!r} may use lowercase letters, digits and single separators ('.', '_', '-', '/')"
    return None


def validate_image(reference: str) -> str:
    problem = image_problem(reference)
    if problem:
        raise ValidationError({"image": f"Image reference {reference!r} is invalid: {problem}."})
    return reference


def validate_port(port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError({"port": "Port must be a whole number from 1 to 65535."})
    if port in RESERVED_PORTS:
        raise ValidationError({"port": f"Port {port} is reserved by Knative ({', '.join(map(str, RESERVED_PORTS))}: "
                                       "its queue-proxy, metrics and profiling ports); use another, e.g. 8080."})
    return port


def validate_env_name(name: str, field: str) -> None:
    if not isinstance(name, str) or not C_IDENTIFIER.match(name):
        message = f"{name!r} is not a valid variable name (letters, digits, '_'; not a digit first)."
        raise ValidationError({field: message})
    if name in RESERVED_ENV:
        raise ValidationError({field: f"{name} is set by Knative and cannot be overridden."})


def validate_env(env, secret_names=()) -> list[dict]:
    if not isinstance(env, list):
        raise ValidationError({"env": 'Expected a list of {"name": …, "value": …}.'})
    seen: set[str] = set()
    cleaned = []
    for item in env:
        if not isinstance(item, dict) or set(item) - {"name", "value"} or "name" not in item:
            raise ValidationError({"env": 'Each variable is {"name": …, "value": …}.'})
        name, value = item["name"], item.get("value", "")
        validate_env_name(name, "env")
        if not isinstance(value, str):
            raise ValidationError({"env": f"The value of {name} must be a string."})
        if name in seen:
            raise ValidationError({"env": f"{name} is set twice."})
        if name in secret_names:
            raise ValidationError({"env": f"{name} is also a secret variable; use one or the other."})
        seen.add(name)
        cleaned.append({"name": name, "value": value})
    return cleaned


def timeout_limit() -> int:
    """The longest trigger timeout that can hold: Knative's maximum (600 s), or the gateway's route timeout
    if lower. Emissary cuts every request to a Knative route at 15 s (RELAY_GATEWAY_ROUTE_TIMEOUT), whatever
    the revision's timeoutSeconds says."""
    return max(1, int(min(600, settings.RELAY_GATEWAY_ROUTE_TIMEOUT)))


def default_timeout() -> int:
    """A new trigger's timeout when none is given: Knative's default (300 s), within timeout_limit()."""
    return min(300, timeout_limit())


def validate_scaling(*, min_scale: int, max_scale: int, target_concurrency, timeout_seconds: int,
                     gateway_limit: bool = True) -> None:
    """`gateway_limit`: also hold timeout_seconds to the gateway's route timeout (off for a stored timeout that
    is not being changed, so a trigger made before a lower limit can still be edited)."""
    limit = settings.RELAY_MAX_SCALE_LIMIT
    if min_scale < 0:
        raise ValidationError({"min_scale": "Must be 0 or more."})
    if max_scale < 1 or max_scale > limit:
        raise ValidationError({"max_scale": f"Must be from 1 to {limit} (RELAY_MAX_SCALE_LIMIT)."})
    if max_scale < min_scale:
        raise ValidationError({"max_scale": f"Must be at least min_scale ({min_scale})."})
    if target_concurrency is not None and not 1 <= target_concurrency <= 10000:
        raise ValidationError({"target_concurrency": "Must be from 1 to 10000, or empty for Knative's default."})
    if not 1 <= timeout_seconds <= 600:
        raise ValidationError({"timeout_seconds": "Must be from 1 to 600 seconds (Knative's maximum)."})
    limit = timeout_limit()
    if gateway_limit and timeout_seconds > limit:
        raise ValidationError({"timeout_seconds": (
            f"Must be from 1 to {limit} seconds: the gateway cuts every request at {limit} s "
            f"(RELAY_GATEWAY_ROUTE_TIMEOUT), whatever the trigger allows.")})
