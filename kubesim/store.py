"""The in-memory object store: the one source of truth for the API server and the Knative controllers.

Everything is synchronous and runs on the simulator's event loop, so there are no locks: a write is a commit,
gets a new global resourceVersion and emits one event, delivered to subscribers in commit order (writes made by
a subscriber while an event is being delivered are queued behind it). Stored objects are never mutated in
place: a write stores a new object (which may share unchanged subtrees with the old one). `get`, `try_get`,
`list` and the writes' results are deep copies; the hot paths (the Knative controllers) use the no-copy
forms instead — `peek`, `iter_refs`, `ref=True` on `create`/`mutate`, `subscribe(copy=False)` — and must
only read what they get. The watch history keeps each event as its JSON text (made on first use), which
is compact and is exactly what a watch stream sends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import marshal
import random
import re
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, already_exists, bad_request, conflict, forbidden, invalid, not_found
from .resources import RESOURCES, Resource
from .selectors import parse_field_selector, parse_label_selector

log = logging.getLogger("kubesim.store")

Subscriber = Callable[[str, str, dict], None]
AdmissionHook = Callable[[str, dict, "dict | None", str], dict]

_SERVER_META = ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp",
                "deletionGracePeriodSeconds", "resourceVersion")

_NAME_RULES = {
    "subdomain": (253, re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
                  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                  "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                  "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    "label": (63, re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
              "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
              "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    "dns1035": (63, re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"),
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
}


# Kinds whose objects the real apiserver gives no metadata.generation.
_NO_GENERATION = {"namespaces", "pods", "services", "resourcequotas"}


_now_cache: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time in RFC 3339 (second precision), formatted once per second."""
    global _now_cache
    t = int(time.time())
    if _now_cache[0] != t:
        _now_cache = (t, datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _now_cache[1]


def deep_copy(o: Any) -> Any:
    """A deep copy of a JSON-like value.

    marshal round-trips dict/list/str/number trees in C, ~3x faster than a Python walk and ~5x faster
    than copy.deepcopy; copying is the store's hottest path (every read and every event). Version 2
    keeps no object references, so shared subtrees become independent copies.
    """
    try:
        return marshal.loads(marshal.dumps(o, 2))
    except ValueError:  # something marshal cannot encode: copy by hand
        return _walk_copy(o)


def _walk_copy(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _walk_copy(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_walk_copy(v) for v in o]
    return o


def validate_name(res: Resource, name: str) -> None:
    """422 Invalid with the apiserver's cause when metadata.name breaks the resource's naming rule."""
    limit, rx, text = _NAME_RULES[res.name_rule]
    msgs = []
    if len(name) > limit:
        msgs.append(f"must be no more than {limit} characters")
    if not rx.match(name):
        msgs.append(text)
    if msgs:
        causes = [{"reason": "FieldValueInvalid", "message": f'Invalid value: "{name}": {m}',
                   "field": "metadata.name"} for m in msgs]
        raise invalid(res, name, causes)


def fold_string_data(secret: dict) -> None:
    """What the apiserver does with a Secret's write-only `stringData`: each key goes into `data`
    base64-encoded (over a `data` key of the same name), and `stringData` is dropped."""
    string_data = secret.pop("stringData", None)
    if string_data is None or string_data == {}:
        return
    if not isinstance(string_data, dict):
        raise bad_request("Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal "
                          f"{_json_type(string_data)} into Go struct field Secret.stringData of type "
                          "map[string]string")
    data = secret.get("data")
    if not isinstance(data, dict):
        data = {}
    for k, v in string_data.items():
        if not isinstance(v, str):
            raise bad_request("Secret in version \"v1\" cannot be handled as a Secret: json: cannot "
                              f"unmarshal {_json_type(v)} into Go struct field Secret.stringData of type "
                              "string")
        data[k] = base64.b64encode(v.encode()).decode()
    secret["data"] = data


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "string"


class Event:
    """One committed change, as kept in the watch history and handed to watch streams.

    The JSON text (`raw`) is made on first use (a watch stream or a resume needs it) and then the
    object is let go: most events are never watched, and serializing is the costliest part of a
    commit. Holding the committed object until then is safe because stored objects are never
    mutated in place.
    """

    __slots__ = ("rv", "type", "key", "namespace", "name", "labels", "old_labels", "_obj", "_raw")

    def __init__(self, rv: int, type_: str, key: str, obj: dict, old_labels: dict | None):
        meta = obj["metadata"]
        self.rv = rv
        self.type = type_
        self.key = key
        self.namespace = meta.get("namespace", "")
        self.name = meta["name"]
        self.labels = meta.get("labels") or {}
        self.old_labels = old_labels
        self._obj: dict | None = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = json.dumps(self._obj, separators=(",", ":")).encode()
            self._obj = None
        return self._raw

    def line(self, type_: str | None = None) -> bytes:
        """The watch-stream line for this event (optionally re-typed for a selector watch)."""
        return b'{"type":"' + (type_ or self.type).encode() + b'","object":' + self.raw + b"}\n"


class Store:
    """Objects by resource key and (namespace, name); see the module docstring for the rules."""

    def __init__(self, history: int = 10000):
        self.resource_version = 0
        self._objs: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in RESOURCES}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self.history: deque[Event] = deque()
        self.history_size = max(1, history)
        self.compacted_rv = 0  # events with rv <= this are gone from the history
        self._subs: list[tuple[Subscriber, bool]] = []
        self.watch_listeners: list[Callable[[Event], None]] = []
        self._pending: deque[tuple[Event, dict]] = deque()
        self._dispatching = False
        self.admission: dict[str, list[AdmissionHook]] = {}

    # ---------------------------------------------------------------- reads
    def _ref(self, key: str, namespace: str | None, name: str) -> dict | None:
        return self._objs[key].get((namespace or "" if RESOURCES[key].namespaced else "", name))

    def get(self, key: str, namespace: str | None, name: str) -> dict:
        obj = self._ref(key, namespace, name)
        if obj is None:
            raise not_found(key, name)
        return deep_copy(obj)

    def try_get(self, key: str, namespace: str | None, name: str) -> dict | None:
        obj = self._ref(key, namespace, name)
        return None if obj is None else deep_copy(obj)

    def peek(self, key: str, namespace: str | None, name: str) -> dict | None:
        """The stored object itself, NOT a copy (read-only: never mutate it), or None.

        For hot read paths (controllers, the gateway) where a deep copy per read is the main cost.
        """
        return self._ref(key, namespace, name)

    def iter_refs(self, key: str, namespace: str | None = None, label_selector: str | None = None,
                  field_selector: str | None = None) -> Iterator[dict]:
        """The stored objects themselves (NOT copies; do not mutate), sorted by namespace/name."""
        lsel = parse_label_selector(label_selector)
        fsel = parse_field_selector(field_selector, key)
        items = self._objs[key]
        for k in sorted(items):
            if namespace and k[0] != namespace:
                continue
            obj = items[k]
            if lsel and not lsel(obj["metadata"].get("labels") or {}):
                continue
            if fsel and not fsel(obj):
                continue
            yield obj

    def list(self, key: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[dict], str]:
        items = [deep_copy(o) for o in self.iter_refs(key, namespace, label_selector, field_selector)]
        return items, str(self.resource_version)

    def by_uid(self, uid: str) -> tuple[str, str, str] | None:
        """(key, namespace, name) of the live object with this uid."""
        return self._uids.get(uid)

    # ---------------------------------------------------------------- writes
    def create(self, key: str, obj: dict, namespace: str | None = None, ref: bool = False) -> dict:
        """Store a new object; returns a copy of what was stored (the stored object itself,
        read-only, when `ref`)."""
        res = RESOURCES[key]
        obj = deep_copy(obj)
        if key == "secrets":
            fold_string_data(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        ns = ""
        if res.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
            ns = namespace or meta.get("namespace") or ""
            if not ns:
                raise bad_request("the namespace of the object is not set")
            nsobj = self._objs["namespaces"].get(("", ns))
            if nsobj is None:
                raise not_found("namespaces", ns)
            if nsobj["metadata"].get("deletionTimestamp"):
                raise forbidden(f"{res.plural} \"{meta.get('name') or meta.get('generateName', '')}\" is "
                                f"forbidden: unable to create new content in namespace {ns} because it is "
                                "being terminated")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        name = meta.get("name")
        if not name:
            gen = meta.get("generateName")
            if not gen:
                raise invalid(res, "", [{"reason": "FieldValueRequired", "message": "Required value: name "
                                         "or generateName is required", "field": "metadata.name"}])
            for _ in range(100):
                name = gen[:58] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                if (ns, name) not in self._objs[key]:
                    break
            meta["name"] = name
        validate_name(res, name)
        if (ns, name) in self._objs[key]:
            raise already_exists(res, name)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(f, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if res.has_status and key not in _NO_GENERATION:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if key == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        self._commit(key, obj, "ADDED", None)
        self._check_owners(key, obj)
        return obj if ref else deep_copy(obj)

    def update(self, key: str, obj: dict, status: bool = False) -> dict:
        return self._update(key, obj, status, owned=False)

    def _update(self, key: str, obj: dict, status: bool, owned: bool, ref: bool = False) -> dict:
        """update(); `owned` means obj is already a private copy the store may keep; `ref` returns
        the stored object itself (read-only) instead of a copy."""
        res = RESOURCES[key]
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "" if res.namespaced else ""
        name = meta.get("name") or ""
        stored = self._objs[key].get((ns, name))
        if stored is None:
            raise not_found(res, name)
        smeta = stored["metadata"]
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != smeta["resourceVersion"]:
            raise conflict(res, name)
        if status:
            new = dict(stored)
            if obj.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = obj["status"] if owned else deep_copy(obj["status"])
        else:
            new = obj if owned else deep_copy(obj)
            if key == "secrets":
                fold_string_data(new)
            nmeta = new.get("metadata") or {}
            for f in _SERVER_META:
                if f in smeta:
                    nmeta[f] = smeta[f]
                else:
                    nmeta.pop(f, None)
            new["metadata"] = nmeta
            new["apiVersion"] = res.api_version
            new["kind"] = res.kind
            if res.has_status:
                if "status" in stored:
                    new["status"] = stored["status"]
                else:
                    new.pop("status", None)
        if key in ("secrets", "configmaps") and stored.get("immutable") is True and not status:
            _check_immutable(res, name, stored, new)
        if new == stored:
            return stored if ref else deep_copy(stored)
        if "generation" in smeta and _spec_of(new) != _spec_of(stored):
            new["metadata"] = dict(new["metadata"], generation=smeta["generation"] + 1)
        # the apiserver removes a deleted object once an update leaves it no finalizers, unless it is
        # still in its grace period (registry/generic/registry/store.go `ShouldDeleteDuringUpdate`)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") and \
                not new["metadata"].get("deletionGracePeriodSeconds"):
            return self._remove(key, new)
        self._commit(key, new, "MODIFIED", smeta.get("labels") or {})
        if new["metadata"].get("ownerReferences") != smeta.get("ownerReferences"):
            self._check_owners(key, new)
        return new if ref else deep_copy(new)

    def mutate(self, key: str, namespace: str | None, name: str, fn: Callable[[dict], None],
               status: bool = False, ref: bool = False) -> dict | None:
        """Read-modify-write of one object: fn(obj) changes a private copy, which is then written
        (as a status write when `status`; fn may then only change `status`, the rest of the object
        it gets is shared with the store). Returns the result as update() does (the stored object
        itself, read-only, when `ref`), or None when the object does not exist."""
        stored = self._ref(key, namespace, name)
        if stored is None:
            return None
        if status:   # only the status is taken from fn's result: copy just that
            obj = dict(stored, metadata=dict(stored["metadata"]))
            if "status" in stored:
                obj["status"] = deep_copy(stored["status"])
        else:
            obj = deep_copy(stored)
        fn(obj)
        obj["metadata"].pop("resourceVersion", None)
        obj["metadata"]["name"], obj["metadata"]["namespace"] = name, namespace or ""
        try:
            return self._update(key, obj, status, owned=True, ref=ref)
        except ApiError as e:  # removed meanwhile (cannot happen synchronously, but be safe)
            if e.code == 404:
                return None
            raise

    def delete(self, key: str, namespace: str | None, name: str, grace: int | None = None) -> dict:
        """Delete an object; a running pod is deleted gracefully (see `_graceful_pod`). `grace` is the
        request's gracePeriodSeconds (pods only; None: the pod's terminationGracePeriodSeconds)."""
        res = RESOURCES[key]
        ns = namespace or "" if res.namespaced else ""
        stored = self._objs[key].get((ns, name))
        if stored is None:
            raise not_found(res, name)
        smeta = stored["metadata"]
        if key == "pods":
            terminating = self._graceful_pod(stored, grace)
            if terminating is not None:
                return terminating
        if key == "namespaces":
            if not smeta.get("deletionTimestamp"):
                new = dict(stored, metadata=dict(smeta, deletionTimestamp=now_rfc3339()),
                           status=dict(stored.get("status") or {}, phase="Terminating"))
                self._commit(key, new, "MODIFIED", smeta.get("labels") or {})
                self._defer(lambda: self._empty_namespace(name))
                return deep_copy(new)
            return deep_copy(stored)
        if smeta.get("finalizers"):
            if smeta.get("deletionTimestamp"):
                return deep_copy(stored)
            new = dict(stored, metadata=dict(smeta, deletionTimestamp=now_rfc3339(),
                                             deletionGracePeriodSeconds=0))
            self._commit(key, new, "MODIFIED", smeta.get("labels") or {})
            return deep_copy(new)
        return self._remove(key, dict(stored))

    def _graceful_pod(self, stored: dict, grace: int | None) -> dict | None:
        """The apiserver's graceful pod deletion (kubernetes pkg/registry/core/pod/strategy.go
        `CheckGracefulDelete`, apimachinery meta/v1 types.go `DeletionTimestamp`): the grace period is the
        request's, else spec.terminationGracePeriodSeconds (default 30); it is 0 for a pod never scheduled
        or already Succeeded/Failed, and a negative one becomes 1. With a grace period the pod is only
        marked — `deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds`, which a later
        delete may shorten but never lengthen — and the kubelet removes it once its containers stopped
        (kubesim's Serving, after `termination_grace`). Returns the marked pod, or None to remove it now."""
        meta, spec = stored["metadata"], stored.get("spec") or {}
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
        if not spec.get("nodeName") or (stored.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        grace = max(1, grace) if grace < 0 else grace
        current = meta.get("deletionGracePeriodSeconds")
        if grace == 0 or (current is not None and grace >= int(current)):
            return None if grace == 0 else deep_copy(stored)
        at = datetime.fromtimestamp(int(time.time()) + grace, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        new = dict(stored, metadata=dict(meta, deletionTimestamp=at, deletionGracePeriodSeconds=grace))
        self._commit("pods", new, "MODIFIED", meta.get("labels") or {})
        return deep_copy(new)

    def subscribe(self, fn: Subscriber, copy: bool = True) -> Callable[[], None]:
        """Call fn(type, key, obj) after every commit. `copy=False` hands fn the committed object
        itself instead of a deep copy: fn must then only read it."""
        entry = (fn, copy)
        self._subs.append(entry)

        def unsubscribe() -> None:
            if entry in self._subs:
                self._subs.remove(entry)

        return unsubscribe

    # ---------------------------------------------------------------- internals
    def _commit(self, key: str, obj: dict, type_: str, old_labels: dict | None) -> None:
        self.resource_version += 1
        meta = obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self.resource_version))
        ns = meta.get("namespace", "")
        old = self._objs[key].get((ns, meta["name"]))
        self._objs[key][(ns, meta["name"])] = obj
        self._index(key, obj, old)
        self._emit(type_, key, obj, old_labels)

    def _remove(self, key: str, obj: dict) -> dict:
        self.resource_version += 1
        meta = obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self.resource_version))
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        self._objs[key].pop((ns, name), None)
        self._uids.pop(uid, None)
        for ref in meta.get("ownerReferences") or []:
            deps = self._dependents.get(ref.get("uid"))
            if deps:
                deps.discard((key, ns, name))
        self._emit("DELETED", key, obj, meta.get("labels") or {})
        if uid in self._dependents:
            self._defer(lambda: self._collect(uid))
        if ns:
            nsobj = self._objs["namespaces"].get(("", ns))
            if nsobj and nsobj["metadata"].get("deletionTimestamp"):
                self._defer(lambda: self._finish_namespace(ns))
        return deep_copy(obj)

    def _index(self, key: str, obj: dict, old: dict | None) -> None:
        meta = obj["metadata"]
        ident = (key, meta.get("namespace", ""), meta["name"])
        self._uids[meta["uid"]] = ident
        refs = meta.get("ownerReferences") or []
        old_refs = (old["metadata"].get("ownerReferences") or []) if old else []
        if refs == old_refs:
            return
        for ref in old_refs:
            deps = self._dependents.get(ref.get("uid"))
            if deps:
                deps.discard(ident)
        for ref in refs:
            if ref.get("uid"):
                self._dependents.setdefault(ref["uid"], set()).add(ident)

    def _emit(self, type_: str, key: str, obj: dict, old_labels: dict | None) -> None:
        ev = Event(self.resource_version, type_, key, obj, old_labels)
        if len(self.history) >= self.history_size:
            self.compacted_rv = self.history.popleft().rv
        self.history.append(ev)
        self._pending.append((ev, obj))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                ev, o = self._pending.popleft()
                for w in list(self.watch_listeners):
                    w(ev)
                for fn, copy in list(self._subs):
                    try:
                        fn(ev.type, ev.key, deep_copy(o) if copy else o)
                    except Exception:
                        log.exception("store subscriber %r failed on %s %s", fn, ev.type, ev.key)
        finally:
            self._dispatching = False

    def _defer(self, fn: Callable[[], None]) -> None:
        """Run fn soon on the loop (like the real GC / namespace controller), or now without a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fn()
            return
        loop.call_soon(fn)

    # Garbage collection by ownerReferences, as kube-controller-manager's garbage collector does it
    # (https://kubernetes.io/docs/concepts/architecture/garbage-collection/, "Owners and dependents";
    # kubernetes pkg/controller/garbagecollector/garbagecollector.go `attemptToDeleteItem`): an object is
    # looked at when one of its owners goes and when it is written with an owner that does not exist
    # (graph_builder.go processGraphChanges). An owner is absent when no object has its uid
    # (`isDangling`: not found, or found with another uid). With every owner absent the object is deleted
    # with background propagation, so its own dependents follow the same way; with some owner still
    # there, the absent ("dangling") references are patched out of it and it stays.

    def _check_owners(self, key: str, obj: dict) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if any(ref.get("uid") not in self._uids for ref in refs):
            meta = obj["metadata"]
            ns, name = meta.get("namespace", ""), meta["name"]
            self._defer(lambda: self._collect_one(key, ns, name))

    def _collect_one(self, key: str, ns: str, name: str) -> None:
        obj = self._objs[key].get((ns, name))
        refs = (obj["metadata"].get("ownerReferences") or []) if obj else []
        solid = [ref for ref in refs if ref.get("uid") in self._uids]
        if not refs or len(solid) == len(refs):
            return
        try:
            if not solid:
                self.delete(key, ns, name)
            elif not obj["metadata"].get("deletionTimestamp"):  # being deleted: left to finish
                self.mutate(key, ns, name, lambda o: o["metadata"].__setitem__("ownerReferences", solid))
        except ApiError:
            pass

    def _collect(self, owner_uid: str) -> None:
        """Garbage-collect the dependents of a removed owner (see above)."""
        if owner_uid in self._uids:
            return
        for key, ns, name in sorted(self._dependents.pop(owner_uid, set())):
            self._collect_one(key, ns, name)

    def _empty_namespace(self, ns: str) -> None:
        for key, res in RESOURCES.items():
            if not res.namespaced:
                continue
            for (ons, name) in [k for k in self._objs[key] if k[0] == ns]:
                try:
                    self.delete(key, ons, name)
                except ApiError:
                    pass
        self._finish_namespace(ns)

    def _finish_namespace(self, ns: str) -> None:
        nsobj = self._objs["namespaces"].get(("", ns))
        if not nsobj or not nsobj["metadata"].get("deletionTimestamp"):
            return
        if any(k[0] == ns for key, res in RESOURCES.items() if res.namespaced for k in self._objs[key]):
            return
        self._remove("namespaces", dict(nsobj))

    def compact(self, rv: int | None = None) -> int:
        """Forget the history up to `rv` (default: now), as etcd's compaction does: a watch from any
        resourceVersion before it then answers 410 Expired. Returns the compacted resourceVersion."""
        rv = self.resource_version if rv is None else min(int(rv), self.resource_version)
        if rv > self.compacted_rv:
            self.compacted_rv = rv
            while self.history and self.history[0].rv <= rv:
                self.history.popleft()
        return self.compacted_rv

    def events_since(self, rv: int) -> list[Event] | None:
        """History events with rv > `rv`, or None when `rv` is older than the kept history (410 Gone)."""
        if rv < self.compacted_rv:
            return None
        out: list[Event] = []
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out


def _check_immutable(res: Resource, name: str, old: dict, new: dict) -> None:
    """An immutable Secret or ConfigMap keeps its data, and stays immutable (kubernetes
    pkg/apis/core/validation/validation.go ValidateSecretUpdate / ValidateConfigMapUpdate)."""
    msg = "Forbidden: field is immutable when `immutable` is set"
    causes = [{"reason": "FieldValueForbidden", "message": msg, "field": "immutable"}] \
        if new.get("immutable") is not True else []
    for field in ("data", "binaryData") if res.key == "configmaps" else ("data",):
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append({"reason": "FieldValueForbidden", "message": msg, "field": field})
    if causes:
        raise invalid(res, name, causes)


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
