"""Knative Serving's webhooks: defaulting and validation of services, configurations and routes.

The API server runs these hooks for client writes only (see the contract in store.admission).
Messages are formatted like knative.dev/pkg `apis.FieldError.Error()`: errors sorted by message,
`<message>: <paths joined by ", ">` with optional details on the next line, joined by newlines.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError
from .knative_runtime import go_duration
from .store import deep_copy

WEBHOOK = "validation.webhook.serving.knative.dev"
CREATOR = "serving.knative.dev/creator"
LAST_MODIFIER = "serving.knative.dev/lastModifier"
MAX_TIMEOUT = 600
DEFAULT_TIMEOUT = 300
VISIBILITY_LABELS = ("networking.knative.dev/visibility", "serving.knative.dev/visibility")
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
MIN_SCALE_KEYS = ("autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/minScale")
MAX_SCALE_KEYS = ("autoscaling.knative.dev/max-scale", "autoscaling.knative.dev/maxScale")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                "with an alphabetic character, and end with an alphanumeric character (e.g. "
                "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


class FieldErrors:
    """Collects (message, path, details) like apis.FieldError and renders Knative's text."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, message: str, path: str, details: str = "") -> None:
        self.items.append((message, path, details))

    def text(self) -> str:
        merged: dict[tuple[str, str], list[str]] = {}
        for message, path, details in self.items:
            merged.setdefault((message, details), []).append(path)
        out = []
        for (message, details), paths in sorted(merged.items()):
            line = f"{message}: {', '.join(sorted(set(paths)))}"
            out.append(f"{line}\n{details}" if details else line)
        return "\n".join(out)

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(400, "BadRequest",
                           f'admission webhook "{WEBHOOK}" denied the request: '
                           f"validation failed: {self.text()}")


def dns1035_errors(name: str) -> list[str]:
    msgs = []
    if len(name) > 63:
        msgs.append("must be no more than 63 characters")
    if not _DNS1035.fullmatch(name):
        msgs.append(_DNS1035_MSG)
    return msgs


def scale_annotation(annotations: dict[str, str], keys: tuple[str, ...]) -> tuple[str, str] | None:
    for k in keys:
        if k in annotations:
            return k, annotations[k]
    return None


# ----------------------------------------------------------------------------------- defaults

def default_template(template: dict[str, Any]) -> None:
    """What `RevisionTemplateSpec.SetDefaults` adds (Knative 1.x, config-defaults defaults)."""
    meta = template.setdefault("metadata", {})
    if not meta:
        meta["creationTimestamp"] = None
    spec = template.setdefault("spec", {})
    spec.setdefault("containerConcurrency", 0)
    spec.setdefault("timeoutSeconds", DEFAULT_TIMEOUT)
    spec.setdefault("enableServiceLinks", False)
    containers = spec.get("containers")
    if isinstance(containers, list):
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            if not c.get("name"):
                c["name"] = "user-container" if i == 0 else f"user-container-{i}"
            c.setdefault("resources", {})
            if i == 0 and "readinessProbe" not in c:
                c["readinessProbe"] = {"successThreshold": 1, "tcpSocket": {"port": 0}}


def default_traffic(spec: dict[str, Any], default_config: bool = True) -> None:
    """RouteSpec.SetDefaults (knative/serving knative-v1.23.0 pkg/apis/serving/v1/route_defaults.go):
    a Service (it has a default configuration name) with no traffic gets 100 % to the latest revision;
    every target gets `latestRevision = (revisionName == "")` and `percent = 0` when unset."""
    if not spec.get("traffic") and default_config:
        spec["traffic"] = [{"latestRevision": True, "percent": 100}]
    for t in spec.get("traffic") or []:
        if isinstance(t, dict):
            if t.get("latestRevision") is None:
                t["latestRevision"] = not t.get("revisionName")
            if t.get("percent") is None:
                t["percent"] = 0


def set_user_info(obj: dict, old: dict | None, user: str, spec_changed: bool) -> None:
    ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
    if old is None:
        ann[CREATOR] = user
        ann[LAST_MODIFIER] = user
    elif spec_changed:
        ann[LAST_MODIFIER] = user
    else:
        old_ann = (old.get("metadata") or {}).get("annotations") or {}
        if LAST_MODIFIER in old_ann:
            ann[LAST_MODIFIER] = old_ann[LAST_MODIFIER]


# --------------------------------------------------------------------------------- validation

def validate_metadata(obj: dict, errs: FieldErrors, allow_autoscaling: bool, prefix: str) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    gen = meta.get("generateName") or ""
    if gen:
        msgs = dns1035_errors(gen.rstrip("-") or "a")
        if msgs:
            errs.add(f"not a DNS 1035 label prefix: [{' '.join(msgs)}]", prefix + "generateName")
    if name:
        msgs = dns1035_errors(name)
        if msgs:
            errs.add(f"not a DNS 1035 label: [{' '.join(msgs)}]", prefix + "name")
    elif not gen and prefix == "metadata.":
        errs.add("name or generateName is required", prefix + "name")
    annotations = meta.get("annotations") or {}
    validate_autoscaling(annotations, errs, allow_autoscaling, prefix + "annotations")
    labels = meta.get("labels") or {}
    for key in VISIBILITY_LABELS:
        if key in labels and labels[key] != "cluster-local":
            errs.add(f"invalid value: {labels[key]}", f"{prefix}labels.{key}")


def validate_autoscaling(annotations: dict, errs: FieldErrors, allowed: bool, path: str) -> None:
    keys = sorted(k for k in annotations if k.startswith(AUTOSCALING_PREFIX))
    if not keys:
        return
    if not allowed:
        for k in keys:
            errs.add(f'invalid key name "{k}"', path,
                     'autoscaling annotations must be put under '
                     '"spec.template.metadata.annotations" to work')
        return
    values: dict[str, tuple[str, int]] = {}
    for keyset, label in ((MIN_SCALE_KEYS, "min"), (MAX_SCALE_KEYS, "max")):
        found = scale_annotation(annotations, keyset)
        if not found:
            continue
        key, raw = found
        try:
            v = int(str(raw))
        except ValueError:
            errs.add(f"invalid value: {raw}", f"{path}.{key}")
            continue
        if v < 0:
            errs.add(f"expected 0 <= {v} <= 2147483647", f"{path}.{key}")
            continue
        values[label] = (key, v)
    if "min" in values and "max" in values:
        (kmin, vmin), (kmax, vmax) = values["min"], values["max"]
        if vmax != 0 and vmax < vmin:
            msg = f"{'max-scale' if '-' in kmax else 'maxScale'}={vmax} is less than " \
                  f"{'min-scale' if '-' in kmin else 'minScale'}={vmin}"
            errs.add(msg, f"{path}.{kmax}")
            errs.add(msg, f"{path}.{kmin}")
    target = annotations.get("autoscaling.knative.dev/target")
    if target is not None:
        try:
            if float(target) < 0.01:
                errs.add(f"target {target} should be at least 0.01", f"{path}.autoscaling.knative.dev/target")
        except ValueError:
            errs.add(f"invalid value: {target}", f"{path}.autoscaling.knative.dev/target")


# knative/serving knative-v1.23.0 pkg/apis/serving/k8s_validation.go reservedPorts: queue-proxy's
# BackendHTTPPort 8012, BackendHTTP2Port 8013, QueueAdminPort 8022, metrics 9090/9091
# (pkg/networking/constants.go) and knative.dev/pkg observability/runtime ProfilingDefaultPort 8008.
RESERVED_PORTS = (8008, 8012, 8013, 8022, 9090, 9091)
# validPortNames: the name is reserved for content negotiation.
VALID_PORT_NAMES = ("", "h2c", "http1")


def validate_ports(containers: list, errs: FieldErrors, sp: str) -> None:
    """k8s_validation.go validateContainersPorts (one port across all containers) and, for the user
    container, validateContainerPorts / validateContainerPortBasic (reserved ports, range, TCP, name)."""
    ports_of = [c.get("ports") or [] if isinstance(c, dict) else [] for c in containers]
    if sum(len(p) if isinstance(p, list) else 1 for p in ports_of) > 1:
        errs.add("more than one container port is set", f"{sp}.containers[*].ports",
                 "Only a single port is allowed across all containers")
    ports = ports_of[0] if ports_of else []
    if not isinstance(ports, list) or not ports or not isinstance(ports[0], dict):
        return
    port, pp = ports[0], f"{sp}.containers[0].ports"
    number = port.get("containerPort", 0)
    if number in RESERVED_PORTS:
        errs.add(f"invalid value: {number} is a reserved port", f"{pp}.containerPort",
                 f"{number} is a reserved port, please use a different value")
    if not isinstance(number, int) or not 0 <= number <= 65535:
        errs.add(f"expected 0 <= {number} <= 65535", f"{pp}.containerPort")
    if port.get("protocol") not in (None, "", "TCP"):
        errs.add(f"invalid value: {port.get('protocol')}", f"{pp}.protocol")
    if (port.get("name") or "") not in VALID_PORT_NAMES:
        errs.add(f"Port name {port.get('name')} is not allowed", pp,
                 "Name must be empty, or one of: 'h2c', 'http1'")


def validate_progress_deadline(annotations: dict, errs: FieldErrors, path: str) -> None:
    """knative/serving knative-v1.23.0 pkg/apis/serving/v1/revision_validation.go
    validateProgressDeadlineAnnotation: a Go duration, at second precision, not negative."""
    key = "serving.knative.dev/progress-deadline"
    raw = annotations.get(key)
    if not raw:
        return
    text = str(raw)
    seconds = go_duration(text.lstrip("+-"))
    if seconds is None:
        errs.add(f"invalid value: {text}", f"{path}.{key}")
    elif round(seconds, 9) != round(seconds):
        errs.add(f"progress-deadline={text} is not at second precision", f"{path}.{key}")
    elif text.startswith("-") and seconds:
        errs.add(f"progress-deadline={text} must be positive", f"{path}.{key}")


def validate_template(template: Any, errs: FieldErrors, path: str) -> None:
    if not isinstance(template, dict):
        errs.add("missing field(s)", path)
        return
    meta = template.get("metadata") or {}
    validate_autoscaling(meta.get("annotations") or {}, errs, True, f"{path}.metadata.annotations")
    validate_progress_deadline(meta.get("annotations") or {}, errs, f"{path}.metadata.annotations")
    spec = template.get("spec") or {}
    sp = f"{path}.spec"
    containers = spec.get("containers")
    if not containers:
        errs.add("missing field(s)", f"{sp}.containers")
    elif not isinstance(containers, list):
        errs.add("invalid value", f"{sp}.containers")
    elif len(containers) > 1:
        errs.add("expected exactly one, got both", f"{sp}.containers")
    else:
        c = containers[0]
        if not isinstance(c, dict) or not c.get("image"):
            errs.add("missing field(s)", f"{sp}.containers[0].image")
        validate_ports(containers, errs, sp)
    ts = spec.get("timeoutSeconds")
    if ts is not None and (not isinstance(ts, int) or not 0 <= ts <= MAX_TIMEOUT):
        errs.add(f"expected 0 <= {ts} <= {MAX_TIMEOUT}", f"{sp}.timeoutSeconds")
    cc = spec.get("containerConcurrency")
    if cc is not None and (not isinstance(cc, int) or not 0 <= cc <= 1000):
        errs.add(f"expected 0 <= {cc} <= 1000", f"{sp}.containerConcurrency")


_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                  "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                  "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def qualified_name_errors(name: str) -> list[str]:
    """apimachinery validation.IsQualifiedName, for names without a `prefix/` part."""
    if "/" in name:
        prefix, _, name = name.partition("/")
        if not prefix:
            return ["prefix part must be non-empty"]
    msgs = []
    if not name:
        return ["name part must be non-empty"]
    if len(name) > 63:
        msgs.append("name part must be no more than 63 characters")
    if not _QUALIFIED.fullmatch(name):
        msgs.append(_QUALIFIED_MSG)
    return msgs


def validate_traffic(traffic: Any, errs: FieldErrors, path: str, default_config: bool = False) -> None:
    """validateTrafficList and TrafficTarget.Validate in spec context (knative/serving knative-v1.23.0
    pkg/apis/serving/v1/route_validation.go; round2-facts.md §2.2). `default_config` is a Service's
    (HasDefaultConfigurationName): configurationName is then not allowed and not required. Paths are
    apis.FieldError's: `ViaIndex(i)` -> `spec.traffic[i].field`, `ErrInvalidArrayValue(.., "tag", i)`
    -> `spec.traffic.tag[i]`; the sum covers every percent and an empty list sums to 0."""
    if traffic is None:
        traffic = []
    if not isinstance(traffic, list):
        errs.add("invalid value", path)
        return
    total = 0
    seen: dict[str, int] = {}
    for i, t in enumerate(traffic):
        ip = f"{path}[{i}]"
        if not isinstance(t, dict):
            errs.add("invalid value", ip)
            continue
        rev = t.get("revisionName") or ""
        cfg = t.get("configurationName") or ""
        lr = t.get("latestRevision")
        # validateLatestRevision: the senses of pinning and following must match
        if isinstance(lr, bool) and bool(rev) == lr:
            errs.add(f'may not set revisionName "{rev}" when latestRevision is {str(lr).lower()}',
                     f"{ip}.latestRevision")
        # validateRevisionAndConfiguration
        if default_config and cfg:
            errs.add("must not set the field(s)", f"{ip}.configurationName")
        elif rev and cfg:
            errs.add("expected exactly one, got both", f"{ip}.revisionName")
            errs.add("expected exactly one, got both", f"{ip}.configurationName")
        elif rev:
            msgs = qualified_name_errors(rev)
            if msgs:
                errs.add(f'invalid key name "{rev}"', f"{ip}.revisionName", ", ".join(msgs))
        elif cfg:
            msgs = qualified_name_errors(cfg)
            if msgs:
                errs.add(f'invalid key name "{cfg}"', f"{ip}.configurationName", ", ".join(msgs))
        elif not default_config:
            errs.add("expected exactly one, got neither", f"{ip}.revisionName")
            errs.add("expected exactly one, got neither", f"{ip}.configurationName")
        # validateTrafficPercentage
        p = t.get("percent")
        if p is not None:
            if not isinstance(p, int) or isinstance(p, bool):
                errs.add(f"invalid value: {p}", f"{ip}.percent")
            else:
                if not 0 <= p <= 100:
                    errs.add(f"expected 0 <= {p} <= 100", f"{ip}.percent")
                total += p
        # validateURL: never in spec
        if t.get("url"):
            errs.add("must not set the field(s)", f"{ip}.url")
        tag = t.get("tag") or ""
        if not tag:
            continue
        msgs = dns1035_errors(tag)
        if msgs:
            errs.add(f"invalid value: not a DNS 1035 label: [{' '.join(msgs)}]", f"{path}.tag[{i}]")
        if tag in seen:
            errs.add(f'Multiple definitions for "{tag}"', f"{ip}.tag")
            errs.add(f'Multiple definitions for "{tag}"', f"{path}[{seen[tag]}].tag")
        else:
            seen[tag] = i
    if total != 100:
        errs.add(f"Traffic targets sum to {total}, want 100", path)


def check_creator(obj: dict, old: dict | None, errs: FieldErrors) -> None:
    if old is None:
        return
    old_ann = (old.get("metadata") or {}).get("annotations") or {}
    new_ann = (obj.get("metadata") or {}).get("annotations") or {}
    if old_ann.get(CREATOR) != new_ann.get(CREATOR):
        errs.add("annotation value is immutable", f"metadata.annotations.{CREATOR}")


# ------------------------------------------------------------------------------------- hooks

def _spec_changed(obj: dict, old: dict | None) -> bool:
    return old is None or obj.get("spec") != old.get("spec")


def admit_service(op: str, obj: dict, old: dict | None, user: str) -> dict:
    obj = deep_copy(obj)
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if isinstance(spec.get("template"), dict) or "template" not in spec:
        default_template(spec.setdefault("template", {}))
    default_traffic(spec)
    old_cmp = old
    if old is not None:   # compare against the defaulted old spec
        old_cmp = deep_copy(old)
        os_ = old_cmp.setdefault("spec", {})
        default_template(os_.setdefault("template", {}))
        default_traffic(os_)
    errs = FieldErrors()
    check_creator(obj, old, errs)
    errs.raise_if_any()
    set_user_info(obj, old, user, _spec_changed(obj, old_cmp))
    validate_metadata(obj, errs, False, "metadata.")
    validate_template(spec.get("template"), errs, "spec.template")
    validate_traffic(spec.get("traffic"), errs, "spec.traffic", default_config=True)
    errs.raise_if_any()
    return obj


def admit_configuration(op: str, obj: dict, old: dict | None, user: str) -> dict:
    obj = deep_copy(obj)
    spec = obj.setdefault("spec", {})
    default_template(spec.setdefault("template", {}))
    errs = FieldErrors()
    check_creator(obj, old, errs)
    errs.raise_if_any()
    set_user_info(obj, old, user, _spec_changed(obj, old))
    validate_metadata(obj, errs, False, "metadata.")
    validate_template(spec.get("template"), errs, "spec.template")
    errs.raise_if_any()
    return obj


def admit_route(op: str, obj: dict, old: dict | None, user: str) -> dict:
    obj = deep_copy(obj)
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        default_traffic(spec, default_config=False)
    errs = FieldErrors()
    check_creator(obj, old, errs)
    errs.raise_if_any()
    set_user_info(obj, old, user, _spec_changed(obj, old))
    validate_metadata(obj, errs, False, "metadata.")
    validate_traffic(spec.get("traffic"), errs, "spec.traffic")
    errs.raise_if_any()
    return obj


HOOKS = {
    "services.serving.knative.dev": admit_service,
    "configurations.serving.knative.dev": admit_configuration,
    "routes.serving.knative.dev": admit_route,
}
