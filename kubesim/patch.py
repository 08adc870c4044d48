"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge and server-side apply.

The official client picks the content type by API and body shape (kubernetes-client-wire.md), and relayweb
patches ksvcs instead of replacing them (a PUT would drop Knative's creator annotation), so every patch type
must behave like the apiserver's, errors included.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .errors import ApiError, bad_request, unsupported_media_type
from .resources import Resource
from .store import deep_copy

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC, APPLY)

# Strategic merge: list fields merged by a key instead of replaced (from the built-in types' patchMergeKey).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "ownerReferences": "uid",
    "hostAliases": "ip", "containerStatuses": "name", "topologySpreadConstraints": "topologyKey",
}
# Lists of scalars merged as sets.
_MERGE_SETS = {"finalizers"}


def _invalid_422(message: str) -> ApiError:
    return ApiError(422, "Invalid", message, {})


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_body(raw: bytes, content_type: str) -> Any:
    """Decode a patch body (apply bodies may be YAML; the official client sends JSON text)."""
    try:
        if content_type == APPLY:
            return yaml.safe_load(raw.decode() or "null")
        return json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as e:
        raise bad_request(f"error decoding patch: {e}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _merge_key(field: str, path: tuple[str, ...]) -> str | None:
    if field == "ports":
        return "containerPort" if any("ontainers" in p for p in path) else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Merge patch plus list-merge by key, `$patch: delete|replace`, `$deleteFromPrimitiveList`."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    if patch.get("$patch") == "replace":
        return {k: deep_copy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        key = _merge_key(k, path)
        if isinstance(v, list) and key and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, key, path + (k,))
        elif isinstance(v, list) and k in _MERGE_SETS and isinstance(out.get(k), list):
            out[k] = out[k] + [x for x in v if x not in out[k]]
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, path + (k,))
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = deep_copy(v)
    return out


def _merge_list(live: list, patch: list, key: str, path: tuple[str, ...]) -> list:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [deep_copy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    out = [deep_copy(x) for x in live]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]),
                   None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: deep_copy(v) for k, v in item.items() if k != "$patch"})
        else:
            out[idx] = strategic_merge(out[idx], item, path)
    return out


# ---------------------------------------------------------------- RFC 6902
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_422(f'invalid JSON pointer: "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise _invalid_422(f'doc is missing path: "{path}": missing value')
    return cur


def _add(doc: Any, parts: list[str], value: Any, path: str, replace: bool = False) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _invalid_422(f'replace operation does not apply: doc is missing key: "{path}": '
                               "missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _invalid_422(f'add operation does not apply: doc is missing path: "{path}": '
                               "missing value")
    else:
        raise _invalid_422(f'doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise _invalid_422("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _invalid_422(f'remove operation does not apply: doc is missing path: "{path}": '
                       "missing value")


def json_patch(target: dict, ops: Any) -> Any:
    """RFC 6902 operations applied in order to a copy of target; a failing `test` is 422 as well."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = deep_copy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _invalid_422(f'{kind} operation does not apply: missing value: "{path}"')
        if kind == "add":
            doc = _add(doc, parts, deep_copy(op["value"]), path)
        elif kind == "replace":
            doc = _add(doc, parts, deep_copy(op["value"]), path, replace=True)
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind in ("move", "copy"):
            src = op.get("from", "")
            value = _walk(doc, _pointer(src), src)
            if kind == "move":
                _remove(doc, _pointer(src), src)
            doc = _add(doc, parts, deep_copy(value), path)
        elif kind == "test":
            if _walk(doc, parts, path) != op["value"]:
                raise _invalid_422(f'testing value {path} failed: test failed')
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


# ---------------------------------------------------------------- dispatch
def patch_object(res: Resource, live: dict, content_type: str, body: bytes) -> dict:
    """The object after applying a merge / JSON / strategic patch (apply patches: see `apply`)."""
    ctype = media_type(content_type)
    if ctype not in PATCH_TYPES or (ctype == STRATEGIC and res.custom):
        raise _unsupported(res, ctype)
    patch = parse_body(body, ctype)
    if ctype == JSON_PATCH:
        out = json_patch(live, patch)
    elif not isinstance(patch, dict):
        raise _invalid_422("json: cannot unmarshal array into Go value of type map[string]interface {}"
                           if isinstance(patch, list) else "patch body must be a JSON object")
    elif ctype == MERGE:
        out = merge_patch(live, patch)
    else:
        out = strategic_merge(live, patch)
    if not isinstance(out, dict):
        raise _invalid_422("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return out


def _unsupported(res: Resource, ctype: str) -> ApiError:
    err = unsupported_media_type(ctype)
    if res.custom:  # custom resources have no strategic merge
        err.message = ("the body of the request was in an unknown format - accepted media types "
                       "include: application/json-patch+json, application/merge-patch+json, "
                       "application/apply-patch+yaml")
    return err


def apply(res: Resource, live: dict | None, applied: dict, previous: dict | None) -> dict:
    """Server-side apply with one simple field-manager model.

    The manager's configuration is merged onto the live object (lists of built-in types by their merge
    key, other lists replaced); fields this manager applied last time and dropped now are removed. Other
    managers' fields are left alone and conflicts are not reported (as with `force=true`).
    """
    base = deep_copy(live) if live is not None else {}
    if previous:
        base = _drop_removed(base, previous, applied)
    return _apply_merge(base, applied) if res.custom else strategic_merge(base, applied)


def _apply_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return deep_copy(patch)
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _apply_merge(out.get(k), v)
    return out


def _drop_removed(live: Any, prev: Any, new: Any) -> Any:
    if not isinstance(live, dict) or not isinstance(prev, dict):
        return live
    out = dict(live)
    new = new if isinstance(new, dict) else {}
    for k, pv in prev.items():
        if k not in new:
            if k not in ("apiVersion", "kind", "name", "namespace"):
                out.pop(k, None)
        elif isinstance(pv, dict) and k in out:
            out[k] = _drop_removed(out[k], pv, new[k])
    return out
