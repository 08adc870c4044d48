"""Revisions and traffic: Knative's rules for a traffic split, checked before we apply one, and a
trigger's revision history as the pages and the API show it. Pure functions: the services read the cluster.

Knative validates spec.traffic in its webhook (knative/serving knative-v1.23.0
pkg/apis/serving/v1/route_validation.go; round2-facts.md §2.2): percents 0..100 summing to 100, each target
exactly one of a revision or the latest one, tags DNS-1035 labels and unique. The same rules here give a
400 naming our own field (`traffic[1].percent`) instead of Knative's path after a failed deploy.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

FIELDS = ("revision", "latest", "percent", "tag")
FOLLOW_LATEST = [{"revision": None, "latest": True, "percent": 100, "tag": ""}]
CANDIDATE_TAG = "candidate"
GC_NOTE = ("Knative's revision garbage collector (the config-gc ConfigMap in knative-serving) decides which "
           "revisions remain: revisions that get no traffic are deleted once they are older than its "
           "retain-since-create-time and retain-since-last-active-time, keeping at least "
           "min-non-active-revisions. Revisions with traffic and the latest ready one are never collected.")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# k8s.io/apimachinery v0.35.7 pkg/util/validation/validation.go IsDNS1035Label (round2-facts.md §2.2)
DNS1035_MESSAGE = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                   "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                   "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def validate_shape(targets) -> list[dict]:
    """Check a traffic list by Knative's rules (not yet whether its revisions exist); returns it normalised
    as Trigger.traffic holds it, [] for "follow the latest revision". Errors name the field."""
    if not isinstance(targets, list):
        raise ValidationError({"traffic": 'Expected a list of targets, e.g. [{"latest": true, "percent": 100}].'})
    errors: dict[str, str] = {}
    normal: list[dict] = []
    seen_tags: dict[str, int] = {}
    for i, target in enumerate(targets):
        where = f"traffic[{i}]"
        if not isinstance(target, dict):
            errors[where] = 'Expected an object: {"revision": "<name>", "percent": 50} or {"latest": true, …}.'
            continue
        for key in sorted(set(target) - set(FIELDS)):
            errors[f"{where}.{key}"] = "Unknown field: use revision, latest, percent or tag."
        revision, latest = target.get("revision"), target.get("latest", False)
        percent, tag = target.get("percent", 0), target.get("tag") or ""
        if not isinstance(latest, bool):
            errors[f"{where}.latest"] = "Must be true or false."
        elif revision not in (None, "") and not isinstance(revision, str):
            errors[f"{where}.revision"] = "Must be a revision name."
        elif revision and latest:
            errors[f"{where}.revision"] = "Give exactly one of revision and latest: true, not both."
        elif not revision and not latest:
            errors[f"{where}.revision"] = "Give exactly one of revision and latest: true (got neither)."
        if isinstance(percent, bool) or not isinstance(percent, int):
            errors[f"{where}.percent"] = "Must be a whole number from 0 to 100."
        elif not 0 <= percent <= 100:
            errors[f"{where}.percent"] = f"expected 0 <= {percent} <= 100"
        if not isinstance(tag, str):
            errors[f"{where}.tag"] = "Must be a string."
        elif tag and (len(tag) > 63 or not _DNS1035.fullmatch(tag)):
            detail = DNS1035_MESSAGE + (", must be no more than 63 characters" if len(tag) > 63 else "")
            errors[f"{where}.tag"] = f"invalid value: not a DNS 1035 label: [{detail}]"
        elif tag in seen_tags:
            errors[f"{where}.tag"] = f'Multiple definitions for "{tag}" (also traffic[{seen_tags[tag]}].tag).'
        elif tag:
            seen_tags[tag] = i
        normal.append({"revision": None if latest is True else revision, "latest": latest is True,
                       "percent": percent, "tag": tag})
    if not errors and targets:
        total = sum(t["percent"] for t in normal)
        if total != 100:
            errors["traffic"] = f"Traffic targets sum to {total}, want 100."
    if errors:
        raise ValidationError(errors)
    return [] if normal == FOLLOW_LATEST else normal


def check_revisions(targets: list[dict], known: set[str], trigger_name: str) -> None:
    """Each revision a target names must be one of this trigger's, still in the cluster."""
    errors = {
        f"traffic[{i}].revision": (f'Revision "{t["revision"]}" is not a revision of {trigger_name} in the cluster '
                                   f"(it has: {', '.join(sorted(known)) or 'none'}).")
        for i, t in enumerate(targets) if t["revision"] and t["revision"] not in known
    }
    if errors:
        raise ValidationError(errors)


def candidate_targets(traffic: list[dict], serving_revision: str) -> list[dict]:
    """Traffic that keeps what is served now and gives the next latest revision 0 % under tag `candidate`:
    "latest" entries are pinned to the revision that is latest now, an older candidate entry goes."""
    kept = [t for t in traffic if t.get("tag") != CANDIDATE_TAG] or [{"revision": None, "latest": True,
                                                                     "percent": 100, "tag": ""}]
    pinned = [{**t, "revision": serving_revision, "latest": False} if t.get("latest") else dict(t) for t in kept]
    if sum(t["percent"] for t in pinned) != 100:  # the old candidate had a share: the serving revision takes it
        pinned.append({"revision": serving_revision, "latest": False,
                       "percent": 100 - sum(t["percent"] for t in pinned), "tag": ""})
    return [*pinned, {"revision": None, "latest": True, "percent": 0, "tag": CANDIDATE_TAG}]


def _condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def revision_rows(revisions: list[dict], traffic_status: list[dict], *, latest_created: str = "",
                  latest_ready: str = "", spec_version_key: str = "") -> list[dict]:
    """One row per revision, newest first: where it came from (spec version, image), Knative's Ready
    condition, and its share of traffic and tags (from the ksvc's status.traffic as last observed)."""
    rows = []
    for rev in revisions:
        meta, spec = rev.get("metadata") or {}, rev.get("spec") or {}
        name = meta.get("name", "")
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        ready = _condition(rev, "Ready")
        version = annotations.get(spec_version_key, "")
        serving = [t for t in traffic_status if t.get("revisionName") == name]
        tags = [{"tag": t["tag"], "url": t.get("url", "")} for t in serving if t.get("tag")]
        generation = labels.get("serving.knative.dev/configurationGeneration", "")
        rows.append({
            "name": name,
            "created": meta.get("creationTimestamp"),
            "generation": int(generation) if generation.isdigit() else None,
            "spec_version": int(version) if version.isdigit() else None,
            "image": ((spec.get("containers") or [{}])[0]).get("image", ""),
            "ready": ready.get("status", "Unknown"),
            "reason": ready.get("reason", ""),
            "message": ready.get("message", ""),
            "percent": sum(t.get("percent") or 0 for t in serving),
            "tag": tags[0]["tag"] if tags else "",
            "url": tags[0]["url"] if tags else "",
            "tags": tags,
            "latest_created": name == latest_created,
            "latest_ready": name == latest_ready,
            "routing_state": labels.get("serving.knative.dev/routingState", ""),
        })
    rows.sort(key=lambda r: (r["generation"] or 0, r["created"] or "", r["name"]), reverse=True)
    return rows
