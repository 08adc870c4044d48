"""Browser UI for the webhook edge: the webhook URL (copy, curl example, rotation) and the delivery log
(list with filters, detail, replay). Viewers read; editors and owners rotate and replay."""

from __future__ import annotations

import base64
import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from tenants.decorators import tenant_view
from tenants.permissions import Action, allows
from triggers import services
from triggers.deliveries import retries as deliveries
from triggers.deliveries.filters import DeliveryFilter
from triggers.models import Delivery, Trigger
from triggers.security import signatures

SAMPLE_BODY = '{"hello": "world"}'
HEX_PREVIEW_BYTES = 4096
PAGE_SIZE = 50


def _trigger(tenant, name: str) -> Trigger:
    return get_object_or_404(Trigger, tenant=tenant, name=name)


def _dq(text: str) -> str:
    """Text safe inside a double-quoted shell string."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)


def curl_example(trigger: Trigger) -> str:
    """A ready-to-run shell snippet that sends a signed test webhook (the secret is a placeholder)."""
    url = services.trigger_webhook_url(trigger)
    if trigger.verification == "none":
        return f"curl -i -X POST '{url}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{SAMPLE_BODY}'"
    sign = 'openssl dgst -sha256 -hmac "$SECRET"'
    hex_sig = f'{sign} | sed "s/^.* //"'
    lines = ["SECRET='<your verification secret>'", f"BODY='{SAMPLE_BODY}'"]
    if trigger.verification == "github":
        lines.append(f'SIG=$(printf %s "$BODY" | {hex_sig})')
        headers = ["X-Hub-Signature-256: sha256=$SIG"]
    elif trigger.verification == "stripe":
        lines += ["TS=$(date +%s)", f'SIG=$(printf %s "$TS.$BODY" | {hex_sig})']
        headers = ["Stripe-Signature: t=$TS,v1=$SIG"]
    elif trigger.verification == "slack":
        lines += ["TS=$(date +%s)", f'SIG=$(printf %s "v0:$TS:$BODY" | {hex_sig})']
        headers = ["X-Slack-Request-Timestamp: $TS", "X-Slack-Signature: v0=$SIG"]
    else:
        encode = "base64" if trigger.hmac_encoding == "base64" else None
        lines.append(f'SIG=$(printf %s "$BODY" | {sign} -binary | base64)' if encode
                     else f'SIG=$(printf %s "$BODY" | {hex_sig})')
        headers = [f"{_dq(trigger.hmac_header)}: {_dq(trigger.hmac_prefix)}$SIG"]
    header_args = "".join(f' \\\n  -H "{header}"' for header in headers)
    lines.append(f"curl -i -X POST '{url}' \\\n  -H 'Content-Type: application/json'{header_args} \\\n"
                 f'  -d "$BODY"')
    return "\n".join(lines)


def webhook_info(trigger: Trigger) -> dict:
    """What the trigger pages show about the webhook URL (never the verification secret)."""
    previous = None
    expires = trigger.previous_token_expires_at
    if trigger.previous_token and expires and expires > timezone.now():
        previous = expires
    return {"url": services.trigger_webhook_url(trigger), "curl": curl_example(trigger),
            "previous_expires_at": previous, "secret_set": bool(trigger.verification_secret)}


def _hexdump(data: bytes) -> str:
    rows = []
    for offset in range(0, len(data), 16):
        chunk = data[offset:offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset:08x}  {chunk.hex(' '):<47}  {text}")
    return "\n".join(rows)


def body_view(data: bytes, headers: list) -> dict:
    """How to show a body: pretty JSON when the content type says JSON, else text, else hex and base64."""
    data = bytes(data or b"")
    content_type = next((str(v) for k, v in headers if str(k).lower() == "content-type"), "")
    view = {"size": len(data), "content_type": content_type}
    if not data:
        return {**view, "kind": "empty"}
    if "json" in content_type.lower():
        try:
            return {**view, "kind": "json", "text": json.dumps(json.loads(data), indent=2, ensure_ascii=False)}
        except (ValueError, RecursionError):
            pass
    try:
        return {**view, "kind": "text", "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {**view, "kind": "binary", "hex": _hexdump(data[:HEX_PREVIEW_BYTES]),
                "truncated": len(data) > HEX_PREVIEW_BYTES, "base64": base64.b64encode(data).decode("ascii")}


@tenant_view(Action.VIEW)
def delivery_list(request, tenant, name):
    trigger = _trigger(tenant, name)
    filters = DeliveryFilter(request.GET or None, queryset=trigger.deliveries.order_by("-received_at"))
    page = Paginator(filters.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "triggers/deliveries.html", {
        "tenant": tenant, "trigger": trigger, "filters": filters, "page": page, "states": Delivery.State.choices,
        "filtered": any(request.GET.get(f) for f in filters.filters), "webhook": webhook_info(trigger),
        "can_change": allows(request.role, Action.CHANGE) and not trigger.deleting,
    })


@tenant_view(Action.VIEW)
def delivery_detail(request, tenant, name, delivery_id):
    trigger = _trigger(tenant, name)
    delivery = get_object_or_404(Delivery.objects.select_related("replay_of", "redelivery_of"), trigger=trigger,
                                 pk=delivery_id)
    return render(request, "triggers/delivery.html", {
        "tenant": tenant, "trigger": trigger, "delivery": delivery,
        "body": body_view(delivery.body, delivery.headers),
        "response_body": body_view(delivery.response_body, delivery.response_headers),
        "attempts": delivery.attempt_history(), "replays": delivery.replays.order_by("-received_at"),
        "redeliveries": delivery.redeliveries.order_by("-received_at"),
        "redacted": any(value == signatures.REDACTED for _, value in delivery.shown_headers()),
        "can_change": allows(request.role, Action.CHANGE) and not trigger.deleting,
    })


@require_POST
@tenant_view(Action.CHANGE)
def delivery_replay(request, tenant, name, delivery_id):
    trigger = _trigger(tenant, name)
    delivery = get_object_or_404(Delivery, trigger=trigger, pk=delivery_id)
    try:
        services.delivery_check_replayable(trigger=trigger, delivery=delivery)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect("ui-delivery-detail", slug=tenant.slug, name=name, delivery_id=delivery.pk)
    copy = deliveries.delivery_replay(delivery)
    messages.success(request, "Replaying: this new delivery is sent in the background.")
    return redirect("ui-delivery-detail", slug=tenant.slug, name=name, delivery_id=copy.pk)


@require_POST
@tenant_view(Action.CHANGE)
def delivery_replay_failed(request, tenant, name):
    trigger = _trigger(tenant, name)
    try:
        services.delivery_check_replayable(trigger=trigger)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        count = deliveries.deliveries_replay_failed(trigger)
        messages.success(request, f"Replaying {count} failed or dead deliveries." if count
                         else "No failed or dead deliveries left to replay.")
    return redirect("ui-delivery-list", slug=tenant.slug, name=name)


@require_POST
@tenant_view(Action.CHANGE)
def trigger_rotate_token(request, tenant, name):
    trigger = _trigger(tenant, name)
    if trigger.deleting:
        messages.error(request, "This trigger is being deleted.")
    else:
        deliveries.trigger_rotate_token(trigger)
        expires = trigger.previous_token_expires_at.strftime("%Y-%m-%d %H:%M UTC")
        messages.success(request, f"New webhook URL for {trigger.name}. The previous URL keeps working until "
                         f"{expires}; update your senders before then.")
    return redirect("ui-trigger-detail", slug=tenant.slug, name=name)
