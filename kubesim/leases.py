"""coordination.k8s.io/v1 Leases: stored like any object; their MicroTimes normalised as the apiserver's
decoding and encoding does (kubernetes/apimachinery pkg/apis/meta/v1/micro_time.go: RFC 3339 accepted
on the way in, `2006-01-02T15:04:05.000000Z07:00` in UTC on the way out), so a client that sends
`+00:00` reads back `Z` with six fractional digits."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import bad_request

KEY = "leases.coordination.k8s.io"
MICRO_TIMES = ("acquireTime", "renewTime")


def micro_time(value: str) -> str:
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise bad_request(f'Lease in version "v1" cannot be handled as a Lease: parsing time "{value}" as '
                          '"2006-01-02T15:04:05.000000Z07:00": cannot parse') from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def admit_lease(op: str, obj: dict, old: dict | None, user: str) -> dict:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for key in MICRO_TIMES:
            if spec.get(key) is not None:
                spec[key] = micro_time(spec[key])
    return obj
