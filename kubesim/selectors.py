"""Label and field selectors, parsed like apimachinery's `labels.Parse` and `fields.ParseSelector`.

relayweb lists and watches by label selector (never one GET per object), so set-based selectors must work;
bad selectors answer 400 with the apiserver's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

LabelMatcher = Callable[[dict[str, str]], bool]
FieldMatcher = Callable[[dict[str, Any]], bool]

_KEY = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(key: str, req: str) -> str:
    key = key.strip()
    if not key or not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}: "
                          "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                          "start and end with an alphanumeric character")
    return key


def _check_value(value: str) -> str:
    value = value.strip()
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: values[0][]: Invalid value: {value!r}: a valid "
                          "label must be an empty string or consist of alphanumeric characters, '-', '_' "
                          "or '.', and must start and end with an alphanumeric character")
    return value


def _requirement(req: str) -> LabelMatcher:
    s = req.strip()
    m = re.match(r"^(.+?)\s+(notin|in)\s*\((.*)\)\s*$", s)
    if m:
        key = _check_key(m.group(1), s)
        values = {_check_value(v) for v in m.group(3).split(",")} if m.group(3).strip() else set()
        if m.group(2) == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("==", "!=", "="):
        if op in s:
            key, _, value = s.partition(op)
            key, value = _check_key(key, s), _check_value(value)
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: key in labels and labels[key] == value
    if s.startswith("!"):
        key = _check_key(s[1:], s)
        return lambda labels: key not in labels
    if any(ch in s for ch in "()<> "):
        raise bad_request(f"unable to parse requirement: found '{s}', expected: in, notin, =, ==, !=, "
                          "gt, lt")
    key = _check_key(s, s)
    return lambda labels: key in labels


def parse_label_selector(text: str | None) -> LabelMatcher | None:
    """A predicate over a labels dict, or None for "everything" (empty selector)."""
    if text is None or not text.strip():
        return None
    reqs = [_requirement(p) for p in _split_top(text) if p.strip()]
    return lambda labels: all(r(labels or {}) for r in reqs)


def _get_path(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


# Field labels the apiserver supports beyond metadata.name / metadata.namespace.
_EXTRA_FIELDS = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "status.phase", "status.podIP", "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "secrets": {"type"},
    "namespaces": {"status.phase"},
}


def parse_field_selector(text: str | None, key: str) -> FieldMatcher | None:
    """A predicate over an object for `metadata.name=x,metadata.namespace!=y` style selectors."""
    if text is None or not text.strip():
        return None
    allowed = {"metadata.name", "metadata.namespace"} | _EXTRA_FIELDS.get(key, set())
    reqs: list[FieldMatcher] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        for op in ("==", "!=", "="):
            if op in part:
                field, _, value = part.partition(op)
                field, value = field.strip(), value.strip()
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        if field not in allowed:
            if key.endswith("knative.dev"):  # custom resources
                raise bad_request(f'"{field}" is not a known field selector: only "metadata.name", '
                                  '"metadata.namespace"')
            raise bad_request(f"field label not supported: {field}")
        neg = op == "!="

        def match(obj: dict, field: str = field, value: str = value, neg: bool = neg) -> bool:
            got = _get_path(obj, field)
            got = "" if got is None else str(got)
            return (got != value) if neg else (got == value)

        reqs.append(match)
    return lambda obj: all(r(obj) for r in reqs)
