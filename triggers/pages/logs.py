"""Browser UI for a trigger's handler logs: the Logs panel of the trigger page, the same panel on its
own page with filters (`logs/?q=&pod=&revision=&since=&until=&delivery=`), the download of the filtered lines,
and the last lines of a pod that crashed. Members read, viewers included.

Everything is read through triggers.logs.queries (the API's filters and cursor pages). The panel draws the newest
PANEL_LINES lines; static/js/logs.js follows new ones over the page's websocket and loads older pages from the
API (triggers/api/logs.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from tenants.decorators import tenant_view
from tenants.permissions import Action
from triggers.logs import queries
from triggers.models import LogLine, Trigger

PANEL_LINES = 100
FILTERS = {"q": "Text", "pod": "Pod", "revision": "Revision", "since": "Since", "until": "Until",
           "delivery": "Delivery"}  # the filter parameters and the names the page gives them
RECENT_LINES = 1000  # the pod and revision choices come from the newest lines (and the trigger's pods)
CRASH_EXITS = ("Error", "OOMKilled")
CRASHED_PODS = 3  # "last lines before … stopped" for at most this many pods
DOWNLOAD_SPAN = timedelta(days=7)  # the download ends at `until` (or now) and starts at most this long before
DOWNLOAD_LINES = 100_000  # the newest lines of that range
DOWNLOAD_CHUNK = 2000  # lines per query while streaming


def _trigger(tenant, name: str) -> Trigger:
    return get_object_or_404(Trigger, tenant=tenant, name=name)


def filter_params(data) -> dict[str, str]:
    """The filter parameters given (non-empty), in FILTERS' order."""
    return {name: value for name in FILTERS if (value := (data.get(name) or "").strip())}


def _choices(trigger: Trigger, params: dict) -> tuple[list[str], list[str]]:
    """Pods and revisions to filter by: the trigger's current pods and revisions, those of its newest lines, and
    the ones asked for (an older pod, by a link)."""
    recent = trigger.log_lines.order_by("-time", "-id").values_list("pod", "revision")[:RECENT_LINES]
    pods = {pod for pod, _ in recent} | {p["name"] for p in trigger.pods or [] if p.get("name")}
    revisions = {rev for _, rev in recent if rev} | {r for r in (trigger.latest_ready_revision,
                                                                 trigger.latest_created_revision) if r}
    pods.update(v for v in [params.get("pod")] if v)
    revisions.update(v for v in [params.get("revision")] if v)
    return sorted(pods), sorted(revisions)


def _failed(trigger: Trigger) -> bool:
    # the trigger page's badge (views.describe: a failed deployment…), or Knative's Ready condition
    return getattr(trigger, "state_class", None) == "failed" or trigger.ready_status == "False"


def stopped_pods(trigger: Trigger) -> list[dict]:
    """Pods that crashed or restarted (OOMKilled, Error…), each with the last lines it printed: {pod, reason,
    lines}. A failed trigger whose pods are gone: the pod of its newest line."""
    pods = [p for p in trigger.pods or [] if p.get("name") and (p.get("last_exit") in CRASH_EXITS
                                                                or (p.get("restarts") or 0) > 0)]
    stopped = [(p["name"], p.get("last_exit") or p.get("reason") or "") for p in pods]
    if not stopped and _failed(trigger):
        newest = trigger.log_lines.order_by("-time", "-id").values_list("pod", flat=True).first()
        stopped = [(newest, trigger.ready_reason)] if newest else []
    now = timezone.now()
    found = []
    for pod, reason in stopped[:CRASHED_PODS]:
        lines = queries.last_lines_before(trigger, now, pod=pod)
        if lines:
            found.append({"pod": pod, "reason": reason, "lines": lines})
    return found


def logs_context(trigger: Trigger, data=None) -> dict:
    """What templates/triggers/_logs.html draws, as `logs`: the filter form's values and errors, the newest
    PANEL_LINES lines matching them, whether the panel follows new lines (not for a past range or a delivery),
    the pods that stopped. `data`: the request's GET (the Logs page), None on the trigger page."""
    params = filter_params(data or {})
    filters = queries.LogFilter(params or None, trigger=trigger)
    valid = not params or filters.is_valid()
    page = queries.page_of_lines(filters.qs, size=PANEL_LINES) if valid else queries.Page([], None, None)
    errors = {} if valid else {name: " ".join(messages) for name, messages in filters.errors.items()}
    pods, revisions = _choices(trigger, params)
    delivery = filters.form.cleaned_data.get("delivery") if valid and "delivery" in params else None
    slug = trigger.tenant.slug
    return {"logs": {
        "params": params, "filtered": bool(params), "valid": valid, "page": page,
        "errors": errors, "error_list": [(FILTERS.get(name, name), text) for name, text in errors.items()],
        "pods": pods, "revisions": revisions, "delivery": delivery, "delivery_match": filters.delivery_match,
        "live": valid and "until" not in params and "delivery" not in params,
        "query": urlencode(params),
        "api_url": reverse("trigger-logs", kwargs={"tenant_slug": slug, "trigger_name": trigger.name}),
        "stopped": stopped_pods(trigger),
    }}


@tenant_view(Action.VIEW)
def trigger_logs(request, tenant, name):
    """The Logs panel on its own page, filtered by the GET form (a reload: the filters are the server's)."""
    trigger = _trigger(tenant, name)
    return render(request, "triggers/_logs_page.html", {
        "tenant": tenant, "trigger": trigger, **logs_context(trigger, request.GET)})


def _text(line: LogLine) -> str:
    cut = f" [… {line.cut} characters cut]" if line.cut else ""
    return f"{line.time.isoformat()} {line.pod} {line.text}{cut}\n"


def _chunk(lines, after: queries.Position | None) -> list[LogLine]:
    if after is None:
        return list(lines.order_by("time", "id")[:DOWNLOAD_CHUNK])
    return queries.page_of_lines(lines, after=after, size=DOWNLOAD_CHUNK).lines


async def _stream(lines, start: queries.Position | None, truncated: bool):
    """The lines after `start`, oldest first, a chunk (one indexed query) at a time: streamed by the ASGI server
    without holding the file in memory."""
    if truncated:
        yield (f"# the newest {DOWNLOAD_LINES} lines of the range; older ones are not included (narrow since "
               "and until to get them)\n")
    after = start
    while True:
        chunk = await sync_to_async(_chunk)(lines, after)
        if chunk:
            yield "".join(_text(line) for line in chunk)
        if len(chunk) < DOWNLOAD_CHUNK:
            return
        after = (chunk[-1].time, chunk[-1].pk)


@tenant_view(Action.VIEW)
def trigger_logs_download(request, tenant, name):
    """The filtered lines as a text file, `<time> <pod> <text>` a line, oldest first: those of the DOWNLOAD_SPAN
    ending at `until` (or now), the newest DOWNLOAD_LINES of them. Bad filters: a 400 naming them."""
    trigger = _trigger(tenant, name)
    params = filter_params(request.GET)
    filters = queries.LogFilter(params or None, trigger=trigger)
    if params and not filters.is_valid():
        text = "".join(f"{FILTERS.get(f, f)}: {' '.join(m)}\n" for f, m in filters.errors.items())
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
    now = timezone.now()
    end = filters.form.cleaned_data.get("until") if params else None
    try:
        lines = filters.qs.filter(time__gte=(end or now) - DOWNLOAD_SPAN)
    except OverflowError:  # an `until` in year 1
        lines = filters.qs
    lines = lines.only("time", "pod", "text", "cut")
    start = lines.order_by("-time", "-id").values_list("time", "id")[DOWNLOAD_LINES:DOWNLOAD_LINES + 1].first()
    response = StreamingHttpResponse(_stream(lines, start, start is not None),
                                     content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{trigger.name}-logs-{now:%Y%m%d-%H%M%S}.txt"'
    response["Cache-Control"] = "private, no-store"
    return response
