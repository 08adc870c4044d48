"""ApiError and the Kubernetes `Status` bodies, with the apiserver's exact reasons and messages.

The official client raises `ApiException` carrying our body verbatim, and relayweb shows Knative's and the
apiserver's messages to users, so the wording here is copied from apimachinery (`k8s.io/apimachinery/pkg/api/errors`).
"""

from __future__ import annotations

from typing import Any

from .resources import RESOURCES, Resource

_CODE_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class ApiError(Exception):
    """An error the API server answers with a Status body (and the store raises for its callers)."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason}
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def reason_for(code: int) -> str:
    """The Status reason the apiserver uses for an HTTP code (fault injection picks codes freely)."""
    return _CODE_REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


def _res(res: Resource | str) -> Resource:
    return RESOURCES[res] if isinstance(res, str) else res


def _details(r: Resource, name: str) -> dict:
    d: dict[str, Any] = {"name": name}
    if r.group:
        d["group"] = r.group
    d["kind"] = r.plural
    return d


def not_found(res: Resource | str, name: str) -> ApiError:
    r = _res(res)
    return ApiError(404, "NotFound", f'{r.key} "{name}" not found', _details(r, name))


def already_exists(res: Resource | str, name: str) -> ApiError:
    r = _res(res)
    return ApiError(409, "AlreadyExists", f'{r.key} "{name}" already exists', _details(r, name))


def conflict(res: Resource | str, name: str) -> ApiError:
    r = _res(res)
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {r.key} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again", _details(r, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def invalid(res: Resource | str, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid; each cause is {"reason": "FieldValueInvalid", "message": "Invalid value: …", "field": …}."""
    r = _res(res)
    parts = [f"{c.get('field')}: {c.get('message')}" if c.get("field") else str(c.get("message"))
             for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = {"name": name, **({"group": r.group} if r.group else {}), "kind": r.kind, "causes": causes}
    return ApiError(422, "Invalid", f'{r.qualified_kind} "{name}" is invalid: {text}', details)


def not_found_path() -> ApiError:
    """Unknown URL / resource: the apiserver's generic 404."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                    f"resource ({method})", {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types include: '
                    f'application/json-patch+json, application/merge-patch+json, '
                    f'application/apply-patch+yaml, application/strategic-merge-patch+json'
                    f' (got "{content_type}")')


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")
