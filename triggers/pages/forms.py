"""Trigger forms. Each field is checked with the same validation code the services use, so every
problem shows next to its field at once; the services still check everything (and have the last word).

Environment variables are edited as `NAME=value` lines. Secret values are write-only: their inputs are
never filled back in, not even when the form comes back with errors.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from django.utils.timesince import timesince

from triggers.models import NAME_MAX_LENGTH, Trigger, name_validator
from triggers.services import EDGE_FIELDS, edge_errors
from triggers.validation import (
    default_timeout,
    timeout_limit,
    validate_env_name,
    validate_image,
    validate_port,
    validate_scaling,
)


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back (for secret values)."""

    def format_value(self, value):
        return None


def _field_error(check, *args, field: str, **kwargs):
    """Run a validation function that raises {field: message} and re-raise it for a clean_<field>()."""
    try:
        return check(*args, **kwargs)
    except ValidationError as e:
        raise ValidationError(e.message_dict.get(field, e.messages)) from None


def parse_lines(text: str, field: str) -> dict[str, str]:
    """`NAME=value` lines → {NAME: value}, in order. Blank lines and `#` comments are skipped;
    errors name the line."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise ValidationError(f"Line {number}: expected NAME=value.")
        name, value = line.split("=", 1)
        name = name.strip()
        try:
            validate_env_name(name, field)
        except ValidationError as e:
            raise ValidationError(f"Line {number}: {' '.join(e.messages)}") from None
        if name in values:
            raise ValidationError(f"Line {number}: {name} is already set on line {lines[name]}.")
        values[name], lines[name] = value, number
    return values


def env_text(env: list[dict]) -> str:
    return "\n".join(f"{item['name']}={item['value']}" for item in env)


def secret_rows(trigger: Trigger) -> list[dict]:
    """[{name, set_at}] for display: the names and when each value was set, never the values."""
    return [{"name": name, "set_at": parse_datetime((meta or {}).get("set_at") or "")}
            for name, meta in sorted(trigger.secret_env.items())]


def _secret_label(row: dict) -> str:
    return f"{row['name']} (set {timesince(row['set_at'])} ago)" if row["set_at"] else row["name"]


# The form's sections, in order: (legend, what the section is about, field names). A field the form does not
# have (name when editing, remove_secrets without secrets) is left out.
SECTIONS = (
    ("Container", "What runs: the image Knative starts for each webhook, and its environment.",
     ("name", "image", "port", "env", "secret_env", "remove_secrets")),
    ("Scaling", "How many pods run: Knative scales between these bounds, down to zero when idle.",
     ("min_scale", "max_scale", "target_concurrency", "timeout_seconds")),
    ("Webhook", "How senders reach it: applies at once, without a deploy.",
     ("mode", "verification", "verification_secret", "hmac_header", "hmac_encoding", "hmac_prefix")),
    ("Delivery", "What happens to each webhook once it is accepted.", ("dedupe_header", "max_attempts")),
)

# Fields that apply only for some values of another field: {field: (controlling field, values)}. Every field is
# shown without JavaScript; static/js/form.js hides the ones that do not apply (never one with an error).
SHOWN_WHEN = {
    "verification_secret": ("verification", ("github", "stripe", "slack", "hmac")),
    "hmac_header": ("verification", ("hmac",)),
    "hmac_encoding": ("verification", ("hmac",)),
    "hmac_prefix": ("verification", ("hmac",)),
    "max_attempts": ("mode", ("async",)),
}


class TriggerForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH, validators=[name_validator],
        help_text="Lowercase letters, digits and hyphens; it becomes the Knative Service name and cannot change.",
    )
    image = forms.CharField(max_length=512, help_text="e.g. ghcr.io/acme/hook-handler:1.4 or …@sha256:<digest>")
    port = forms.IntegerField(initial=8080, help_text="The port your container listens on.")
    env = forms.CharField(
        label="Environment", required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One NAME=value per line. Values are stored in the database and shown here.",
    )
    secret_env = forms.CharField(
        label="Secret environment", required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text="One NAME=value per line. Values go to a Kubernetes Secret and are never shown again; "
        "enter a name that is already set to replace its value. Never filled back in: re-enter values "
        "if the form shows errors.",
    )
    remove_secrets = forms.MultipleChoiceField(
        label="Remove secret variables", required=False, widget=forms.CheckboxSelectMultiple,
    )
    min_scale = forms.IntegerField(initial=0, help_text="Pods kept running when idle (0 scales to zero).")
    max_scale = forms.IntegerField(initial=3, help_text="The most pods Knative starts under load.")
    target_concurrency = forms.IntegerField(
        required=False, help_text="Requests in flight per pod before scaling out; empty for Knative's default.",
    )
    timeout_seconds = forms.IntegerField(initial=default_timeout)
    # The webhook edge: applies at once, without a deploy.
    # Not required: a field missing from the POST keeps the trigger's value (or the default) — see clean().
    mode = forms.ChoiceField(label="Webhook mode", choices=Trigger.Mode.choices, initial=Trigger.Mode.SYNC,
                             required=False,
                             help_text="Sync: the sender waits and gets your handler's answer. Async: the sender "
                                       "gets 202 at once; the worker delivers, retrying failures.")
    verification = forms.ChoiceField(
        label="Signature verification", choices=Trigger.Verification.choices, initial=Trigger.Verification.NONE,
        required=False,
        help_text="Checked before your handler is woken; a bad signature gets 401 and never reaches it.",
    )
    verification_secret = forms.CharField(
        label="Verification secret", required=False, strip=False, max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The signing secret from the sender (GitHub, Stripe, Slack…). Encrypted at rest, never shown again.",
    )
    hmac_header = forms.CharField(label="HMAC signature header", required=False, max_length=100, initial="X-Signature",
                                  help_text="Generic HMAC only: the header carrying the signature.")
    hmac_encoding = forms.ChoiceField(label="HMAC encoding", choices=[("hex", "hex"), ("base64", "base64")],
                                      initial="hex", required=False,
                                      help_text="Generic HMAC only: how the sender writes the signature.")
    hmac_prefix = forms.CharField(label="HMAC prefix", required=False, max_length=20,
                                  help_text="Generic HMAC only: text before the signature, e.g. sha256=.")
    dedupe_header = forms.CharField(
        label="Dedupe header", required=False, max_length=100,
        help_text="Header carrying the sender's delivery id (e.g. Idempotency-Key); a repeat is not delivered "
                  "again. GitHub, Stripe and Slack ids are used without it.",
    )
    max_attempts = forms.IntegerField(
        label="Max attempts", initial=5, required=False,
        help_text="Async mode: attempts before a delivery is marked dead, 1–20.",
    )

    def __init__(self, *args, trigger: Trigger | None = None, **kwargs):
        self.trigger = trigger
        if trigger is not None:
            kwargs.setdefault("initial", {
                "image": trigger.image, "port": trigger.port, "env": env_text(trigger.env),
                "min_scale": trigger.min_scale, "max_scale": trigger.max_scale,
                "target_concurrency": trigger.target_concurrency, "timeout_seconds": trigger.timeout_seconds,
                **{name: getattr(trigger, name) for name in EDGE_FIELDS},
            })
        super().__init__(*args, **kwargs)
        self.fields["timeout_seconds"].help_text = (
            f"Per-request timeout, 1–{timeout_limit()} seconds (the gateway cuts every request at "
            f"{timeout_limit()} s: RELAY_GATEWAY_ROUTE_TIMEOUT).")
        if trigger is not None and trigger.verification_secret:
            self.fields["verification_secret"].help_text = (
                "A secret is set (not shown). Leave empty to keep it; enter a new one to replace it.")
        if trigger is not None:
            del self.fields["name"]  # the ksvc name is fixed once created
        rows = secret_rows(trigger) if trigger is not None else []
        if rows:
            self.fields["remove_secrets"].choices = [(row["name"], _secret_label(row)) for row in rows]
        else:
            del self.fields["remove_secrets"]

    def sections(self) -> list[dict]:
        """[{legend, help, id, fields: [(bound field, shown_when or None)]}] for templates/triggers/form.html."""
        out = []
        for legend, help_text, names in SECTIONS:
            fields = [(self[name], SHOWN_WHEN.get(name)) for name in names if name in self.fields]
            out.append({"legend": legend, "help": help_text, "id": f"section-{legend.lower()}", "fields": fields})
        return out

    def clean_image(self) -> str:
        return _field_error(validate_image, self.cleaned_data["image"].strip(), field="image")

    def clean_port(self) -> int:
        return _field_error(validate_port, self.cleaned_data["port"], field="port")

    def clean_env(self) -> list[dict]:
        return [{"name": n, "value": v} for n, v in parse_lines(self.cleaned_data["env"], "env").items()]

    def clean_secret_env(self) -> dict[str, str]:
        return parse_lines(self.cleaned_data["secret_env"], "secret_env")

    def clean(self):
        data = super().clean()
        env, secrets = data.get("env"), data.get("secret_env")
        if env is not None and secrets is not None:
            kept = set(self.trigger.secret_env if self.trigger else ()) - set(data.get("remove_secrets") or ())
            both = sorted({item["name"] for item in env} & (kept | set(secrets)))
            if both:
                self.add_error("env", f"{', '.join(both)} also set as secret; use one or the other.")
        scaling = ("min_scale", "max_scale", "target_concurrency", "timeout_seconds")
        if all(name in data for name in scaling):
            try:
                validate_scaling(**{name: data[name] for name in scaling}, gateway_limit=not self.trigger
                                 or data["timeout_seconds"] != self.trigger.timeout_seconds)
            except ValidationError as e:
                for field, errors in e.message_dict.items():
                    self.add_error(field, errors)
        for name in EDGE_FIELDS:
            if name not in self.data:
                current = getattr(self.trigger, name) if self.trigger else Trigger._meta.get_field(name).get_default()
                data[name] = current
        if all(name in data for name in EDGE_FIELDS):
            stored = bool(self.trigger and self.trigger.verification_secret)
            edge = {name: data[name] for name in EDGE_FIELDS}
            for field, message in edge_errors(edge, secret_set=stored or bool(data.get("verification_secret"))).items():
                self.add_error(field, message)
        return data

    def spec(self) -> dict:
        """Keyword arguments for trigger_create / trigger_update (without secret values)."""
        names = ("image", "port", "env", "min_scale", "max_scale", "target_concurrency", "timeout_seconds")
        return {name: self.cleaned_data[name] for name in names}

    def edge(self) -> dict:
        """Webhook edge keyword arguments for trigger_create / trigger_update (the secret only when entered)."""
        return {**{name: self.cleaned_data[name] for name in EDGE_FIELDS},
                "verification_secret": self.cleaned_data["verification_secret"] or None}

    def secret_values(self) -> dict[str, str | None]:
        """For trigger_set_secrets: new values, and None for each variable to remove."""
        values: dict[str, str | None] = {name: None for name in self.cleaned_data.get("remove_secrets") or ()}
        values.update(self.cleaned_data["secret_env"])
        return values

