"""The Kubernetes API server: routing, auth, the REST verbs, Status errors; watch and tables live aside.

Every request goes through one catch-all route so that unknown paths, wrong methods and crashes all answer
with real `Status` bodies (404/405/500) instead of aiohttp's text pages: the official client puts the body
into `ApiException.body`, and relayweb shows those messages.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import discovery, faults, patch, podlogs, protobuf
from .errors import ApiError, bad_request, conflict, forbidden, internal, invalid, method_not_allowed, not_found_path
from .resources import Resource, lookup
from .store import now_rfc3339
from .tables import table, wants_table
from .watch import serve_watch

if TYPE_CHECKING:
    from .context import SimContext

log = logging.getLogger("kubesim.api")

API_KEY: web.AppKey[ApiServer] = web.AppKey("api")
_PUBLIC = {("version",), ("healthz",), ("livez",), ("readyz",)}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def respond(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type="application/json")


def status_response(err: ApiError) -> web.Response:
    resp = respond(err.status_body(), err.code)
    if err.code == 429:
        resp.headers["Retry-After"] = "1"
    return resp


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        log.debug("%s %s -> %s %s", request.method, request.path_qs, e.code, e.message)
        return status_response(e)
    except asyncio.CancelledError:
        raise
    except ConnectionError as e:
        if request.transport is None or request.transport.is_closing():
            # The client went away (reading its body, writing to it): nobody to answer, and not
            # an error of ours; aiohttp drops the response quietly.
            log.debug("client gone during %s %s: %r", request.method, request.path_qs, e)
            return web.Response(status=499)
        log.exception("unexpected error on %s %s", request.method, request.path_qs)
        return status_response(internal(f"{type(e).__name__}: {e}"))
    except web.HTTPException:
        raise
    except Exception as e:  # never a traceback or a hung connection for the client
        log.exception("unexpected error on %s %s", request.method, request.path_qs)
        return status_response(internal(f"{type(e).__name__}: {e}"))


def make_api_app(sim: SimContext) -> web.Application:
    """The aiohttp application of the API port (the Kubernetes API plus /kubesim/ fault endpoints)."""
    app = web.Application(middlewares=[_errors], client_max_size=3 * 1024 * 1024)
    api = ApiServer(sim)
    app[API_KEY] = api
    app.router.add_route("*", "/{tail:.*}", api.dispatch)
    return app


class ApiServer:
    def __init__(self, sim: SimContext):
        self.sim = sim
        # Server-side apply: the last configuration each field manager applied, per object.
        self.applied: dict[tuple[str, str, str, str], dict] = {}

    @property
    def store(self):  # noqa: ANN201 - the Store (typed in sim.py)
        return self.sim.store

    # ---------------------------------------------------------------- routing
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts and parts[0] in ("api", "apis"):
            self.sim.count_request(request_verb(request.method, parts, request.query))
        if tuple(parts) in _PUBLIC:
            if parts == ["version"]:
                return respond(discovery.version(self.sim.config.kube_version))
            return web.Response(text="ok")
        self._authenticate(request)
        if not parts:
            return respond({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]})
        if parts[0] == "kubesim":
            return await faults.handle(request, self.sim, parts[1:])
        if parts[0] == "api":
            if len(parts) == 1:
                return self._discovery(request, discovery.api_versions(request.host))
            return await self._resource_path(request, "", parts[1], parts[2:])
        if parts[0] == "apis":
            if len(parts) == 1:
                return self._discovery(request, discovery.api_group_list(self.sim.served))
            if not self.sim.served(parts[1]):  # a CRD not installed: the path does not exist
                raise not_found_path()
            if len(parts) == 2:
                return self._discovery(request, discovery.api_group(parts[1]))
            return await self._resource_path(request, parts[1], parts[2], parts[3:])
        raise not_found_path()

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token or not hmac.compare_digest(token.encode(), self.sim.token.encode()):
            raise ApiError(401, "Unauthorized", "Unauthorized", {})

    def _authorize(self, res: Resource, verb: str, ns: str | None, sub: str | None = None,
                   name: str | None = None) -> None:
        """RBAC denials (SimConfig.denied): 403 with the apiserver's message
        (kubernetes/apiserver pkg/endpoints/handlers/responsewriters/errors.go forbiddenMessage: a
        subresource is named "resource/subresource"). A subresource request names its object, as
        apimachinery's NewForbidden does (`pods "p" is forbidden: …`)."""
        resource = f"{res.plural}/{sub}" if sub else res.plural
        if not self.sim.allowed(res.group, resource, verb, ns):
            where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
            what = f'{res.key} "{name}"' if sub and name else res.key
            raise forbidden(f'{what} is forbidden: User "{self.sim.config.user}" cannot {verb} resource '
                            f'"{resource}" in API group "{res.group}"{where}')

    async def _review(self, request: web.Request) -> web.Response:
        """POST selfsubjectaccessreviews: answered from SimConfig.denied, as the RBAC authorizer would
        for a token bound to relayweb's role (kubernetes/api authorization/v1 types.go
        SubjectAccessReviewStatus; plugin/pkg/auth/authorizer/rbac/rbac.go Authorize gives the reason)."""
        obj = await self._read_object(request, lookup("authorization.k8s.io", "v1", "selfsubjectaccessreviews"))
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        attrs, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if not isinstance(attrs, dict) and not isinstance(nonres, dict):
            raise invalid("selfsubjectaccessreviews.authorization.k8s.io", "", [{
                "reason": "FieldValueRequired", "field": "spec.resourceAttributes",
                "message": "Required value: exactly one of nonResourceAttributes or resourceAttributes "
                           "must be specified"}])
        if isinstance(attrs, dict):
            resource = attrs.get("resource") or ""
            if attrs.get("subresource"):
                resource = f"{resource}/{attrs['subresource']}"
            allowed = self.sim.allowed(attrs.get("group") or "", resource,
                                       attrs.get("verb") or "", attrs.get("namespace") or None)
        else:
            allowed = True
        status = {"allowed": allowed}
        if allowed:
            status["reason"] = (f'RBAC: allowed by ClusterRoleBinding "relayweb" of ClusterRole "relayweb" '
                                f'to User "{self.sim.config.user}"')
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return respond(out, 201)

    def _discovery(self, request: web.Request, doc: dict | None) -> web.Response:
        if doc is None:
            raise not_found_path()
        if request.method != "GET":
            raise method_not_allowed(request.method)
        return respond(doc)

    async def _resource_path(self, request: web.Request, group: str, version: str,
                             rest: list[str]) -> web.StreamResponse:
        if not rest:
            return self._discovery(request, discovery.api_resource_list(group, version))
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        res = lookup(group, version, rest[0])
        if res is None or (ns is not None and not res.namespaced) or len(rest) > 3:
            raise not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        is_log = sub == "log" and res.key == "pods"
        if sub is not None and not is_log and (sub != "status" or not res.has_status):
            raise not_found_path()
        m = request.method
        if is_log:
            # pods/log is a get-only subresource (discovery lists it with verbs ["get"]); RBAC checks the
            # resource "pods/log", which a rule on "pods" does not cover
            if m != "GET":
                raise method_not_allowed(m)
            self._authorize(res, "get", ns, sub="log", name=name)
            return await self._log(request, ns or "", name or "")
        if name is None:
            verb = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}.get(m)
            if verb == "list" and request.query.get("watch") in ("true", "1"):
                verb = "watch"
            if verb in ("create", "deletecollection") and res.namespaced and ns is None:
                verb = None
        else:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m)
            if sub and verb in ("delete",):
                verb = None
        if verb is None or (res.verbs and verb not in res.verbs):
            raise method_not_allowed(m)
        self._authorize(res, verb, ns)
        rule = self.sim.faults.take(verb, res.key, ns)
        if rule is not None:
            if rule.hang:
                await asyncio.sleep(rule.hang)
            err = rule.error()
            if err is not None:
                raise err
        if res.plural == "selfsubjectaccessreviews":
            return await self._review(request)
        handler = getattr(self, f"_{verb}")
        return await handler(request, res, ns, name, sub)

    # ---------------------------------------------------------------- helpers
    async def _read_object(self, request: web.Request, res: Resource) -> dict:
        raw = await request.read()
        ctype = (request.content_type or "").lower()
        if "protobuf" in ctype:
            obj = protobuf.decode(raw)
            self._check_type(res, obj)
            return obj
        try:
            obj = yaml.safe_load(raw.decode()) if "yaml" in ctype else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): "
                              f"couldn't get version/kind; json parse error: {e}") from None
        if not isinstance(obj, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): "
                              "couldn't get version/kind; json parse error: expected an object")
        self._check_type(res, obj)
        if obj.get("metadata") is not None and not isinstance(obj["metadata"], dict):
            raise bad_request("metadata must be an object")
        return obj

    @staticmethod
    def _check_type(res: Resource, obj: dict) -> None:
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != res.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected API "
                              f"version ({res.api_version})")
        if kind and kind != res.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                              f"({res.kind})")

    def _admit(self, res: Resource, op: str, obj: dict, old: dict | None) -> dict:
        for hook in self.store.admission.get(res.key, []):
            obj = hook(op, obj, old, self.sim.config.user)
        return obj

    @staticmethod
    def _same_name(obj: dict, name: str, ns: str | None) -> None:
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name "
                              f"on the URL ({name})")
        if ns is not None and meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        meta["name"] = name
        if ns is not None:
            meta["namespace"] = ns

    # ---------------------------------------------------------------- verbs
    async def _list(self, request: web.Request, res: Resource, ns: str | None, name: None,
                    sub: None) -> web.Response:
        q = request.query
        refs = list(self.store.iter_refs(res.key, ns, q.get("labelSelector"), q.get("fieldSelector")))
        rv = str(self.store.resource_version)
        if wants_table(request.headers.get("Accept")):
            return respond(table(res, refs, rv, q.get("includeObject", "Metadata")))
        head = {"kind": res.list_kind, "apiVersion": res.api_version,
                "metadata": {"resourceVersion": rv}}
        body = _dumps(head)[:-1] + b',"items":[' + b",".join(_dumps(o) for o in refs) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def _watch(self, request: web.Request, res: Resource, ns: str | None, name: None,
                     sub: None) -> web.StreamResponse:
        return await serve_watch(request, self.sim, res, ns)

    async def _get(self, request: web.Request, res: Resource, ns: str | None, name: str,
                   sub: str | None) -> web.Response:
        obj = self.store.get(res.key, ns, name)
        if wants_table(request.headers.get("Accept")):
            return respond(table(res, [obj], obj["metadata"]["resourceVersion"],
                                 request.query.get("includeObject", "Metadata")))
        return respond(obj)

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        """GET pods/{name}/log (kubesim.podlogs; round2-facts.md section 1): the options are validated
        first (LogREST.Get), then the pod is read (404), then the container and its run are chosen."""
        rule = self.sim.faults.take("get", "pods", ns)
        if rule is not None:
            if rule.hang:
                await asyncio.sleep(rule.hang)
            err = rule.error()
            if err is not None:
                raise err
        opts = podlogs.parse_options(request.query, name,
                                     split_streams=self.sim.config.pod_logs_split_streams)
        pod = self.store.get("pods", ns, name)
        serving = self.sim.serving
        logs = serving.pod_logs.get(pod["metadata"].get("uid", "")) if serving is not None else None
        return await podlogs.serve_log(request, pod, logs, opts)

    async def _create(self, request: web.Request, res: Resource, ns: str | None, name: None,
                      sub: None) -> web.Response:
        obj = await self._read_object(request, res)
        if res.has_status and res.key != "namespaces":
            obj.pop("status", None)
            if res.key == "pods":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        if ns is not None:
            meta = obj.setdefault("metadata", {})
            if meta.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        obj = self._admit(res, "CREATE", obj, None)
        return respond(self.store.create(res.key, obj, ns), 201)

    async def _update(self, request: web.Request, res: Resource, ns: str | None, name: str,
                      sub: str | None) -> web.Response:
        obj = await self._read_object(request, res)
        self._same_name(obj, name, ns)
        if res.custom and not obj["metadata"].get("resourceVersion"):
            # CRDs do not allow unconditional updates (apiextensions-apiserver's AllowUnconditionalUpdate).
            raise invalid(res, name, [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                       "message": "Invalid value: 0x0: must be specified for an update"}])
        if sub == "status":
            return respond(self.store.update(res.key, obj, status=True))
        old = self.store.get(res.key, ns, name)
        obj = self._admit(res, "UPDATE", obj, old)
        return respond(self.store.update(res.key, obj))

    async def _patch(self, request: web.Request, res: Resource, ns: str | None, name: str,
                     sub: str | None) -> web.Response:
        ctype = patch.media_type(request.headers.get("Content-Type"))
        raw = await request.read()
        if ctype == patch.APPLY:
            return await self._apply(request, res, ns, name, sub, raw)
        live = self.store.get(res.key, ns, name)
        patched = patch.patch_object(res, live, ctype, raw)
        if not isinstance(patched.get("metadata"), dict):
            patched["metadata"] = {}
        patched["metadata"]["name"] = name
        if ns is not None:
            patched["metadata"]["namespace"] = ns
        self._check_type(res, patched)
        if sub == "status":
            return respond(self.store.update(res.key, patched, status=True))
        patched = self._admit(res, "UPDATE", patched, live)
        return respond(self.store.update(res.key, patched))

    async def _apply(self, request: web.Request, res: Resource, ns: str | None, name: str,
                     sub: str | None, raw: bytes) -> web.Response:
        manager = request.query.get("fieldManager")
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager parameter")
        applied = patch.parse_body(raw, patch.APPLY)
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: the applied configuration must be an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        self._check_type(res, applied)
        self._same_name(applied, name, ns)
        ident = (res.key, ns or "", name, manager)
        live = self.store.try_get(res.key, ns, name)
        obj = patch.apply(res, live, applied, self.applied.get(ident))
        _set_managed(obj, manager, res, applied)
        if live is None:
            if sub == "status":
                raise self._not_found(res, name)
            obj.pop("status", None) if res.has_status else None
            obj = self._admit(res, "CREATE", obj, None)
            created = self.store.create(res.key, obj, ns)
            self.applied[ident] = applied
            return respond(created, 201)
        obj["metadata"].pop("resourceVersion", None)
        if sub == "status":
            out = self.store.update(res.key, obj, status=True)
        else:
            out = self.store.update(res.key, self._admit(res, "UPDATE", obj, live))
        self.applied[ident] = applied
        return respond(out)

    @staticmethod
    def _not_found(res: Resource, name: str) -> ApiError:
        from .errors import not_found
        return not_found(res, name)

    async def _delete(self, request: web.Request, res: Resource, ns: str | None, name: str,
                      sub: None) -> web.Response:
        opts = await self._delete_options(request)
        pre = opts.get("preconditions") or {}
        if pre:
            live = self.store.get(res.key, ns, name)
            if pre.get("resourceVersion") and pre["resourceVersion"] != \
                    live["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if pre.get("uid") and pre["uid"] != live["metadata"]["uid"]:
                raise conflict(res, name)
        grace = request.query.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
        try:
            grace = None if grace in (None, "") else int(grace)
        except (TypeError, ValueError):
            raise bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
        out = self.store.delete(res.key, ns, name, grace=grace if res.key == "pods" else None)
        if self.store.peek(res.key, ns, name) is not None or res.custom or res.key == "pods":
            return respond(out)
        return respond(_success(res, out))

    async def _deletecollection(self, request: web.Request, res: Resource, ns: str | None,
                                name: None, sub: None) -> web.Response:
        q = request.query
        await self._delete_options(request)
        victims = [(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in
                   self.store.iter_refs(res.key, ns, q.get("labelSelector"), q.get("fieldSelector"))]
        for vns, vname in victims:
            try:
                self.store.delete(res.key, vns, vname)
            except ApiError:
                pass
        return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    @staticmethod
    async def _delete_options(request: web.Request) -> dict:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            opts = json.loads(raw)
        except ValueError as e:
            raise bad_request(f"json parse error: {e}") from None
        return opts if isinstance(opts, dict) else {}


def request_verb(method: str, parts: list[str], query: Any) -> str:
    """The verb of a request under /api or /apis (`parts`: its path split on "/"), named as the
    apiserver's RequestInfo does: get, list, watch, create, update, patch, delete, deletecollection
    for resources, the lower-case method for discovery documents ("get")."""
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if not rest:
        return method.lower()
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    named = len(rest) >= 2
    if method in ("GET", "HEAD"):
        if named:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _success(res: Resource, obj: dict) -> dict:
    details: dict[str, Any] = {"name": obj["metadata"]["name"]}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    details["uid"] = obj["metadata"].get("uid")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


def _fields_v1(obj: Any) -> dict:
    if not isinstance(obj, dict):
        return {}
    return {f"f:{k}": _fields_v1(v) for k, v in obj.items()}


def _set_managed(obj: dict, manager: str, res: Resource, applied: dict) -> None:
    """Record the manager in metadata.managedFields, as `kubectl get -o yaml` shows it."""
    meta = obj.setdefault("metadata", {})
    fields = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
    am = dict(fields.get("metadata") or {})
    for k in ("name", "namespace", "resourceVersion", "managedFields"):
        am.pop(k, None)
    fields["metadata"] = am
    entry = {"manager": manager, "operation": "Apply", "apiVersion": res.api_version,
             "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(fields)}
    others = [e for e in meta.get("managedFields") or []
              if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    meta["managedFields"] = [*others, entry]
