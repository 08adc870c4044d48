"""Re-encryption of every stored secret with the first of RELAY_ENCRYPTION_KEYS (triggers/security/crypto.py).

The stored secrets are the triggers' verification secrets and the deliveries' sealed request headers
(triggers/security/sealed.py). Rows are read in primary-key batches; each row is rewritten only if its value is
still the one read (a concurrent edit wins), so the pass is idempotent and safe to run while serving.
"""

from __future__ import annotations

from django.db import models

from triggers.security import crypto

from .models import Delivery, Trigger

COLUMNS: tuple[tuple[type[models.Model], str], ...] = (
    (Trigger, "verification_secret"),
    (Delivery, "sealed_headers"),
)


def _rotate_column(model: type[models.Model], field: str, batch_size: int, counts: dict[str, int],
                   undecryptable: list[str]) -> None:
    rows = model._base_manager.exclude(**{field: ""}).order_by("pk")
    last_pk = None
    while True:
        batch = rows.filter(pk__gt=last_pk) if last_pk is not None else rows
        batch = list(batch.values_list("pk", field)[:batch_size])
        if not batch:
            return
        for pk, token in batch:
            if crypto.is_current(token):
                counts["current"] += 1
                continue
            try:
                new = crypto.rotate(token)
            except ValueError:
                counts["undecryptable"] += 1
                undecryptable.append(f"{model._meta.label} {pk} {field}")
                continue
            model._base_manager.filter(pk=pk, **{field: token}).update(**{field: new})
            counts["rotated"] += 1
        last_pk = batch[-1][0]


def encryption_keys_rotate(*, batch_size: int = 500) -> dict:
    """Re-encrypt every stored secret with the first key: counts of rows re-encrypted, already current and
    undecryptable (with no current key; left as they are), and the names of the undecryptable ones."""
    counts = {"rotated": 0, "current": 0, "undecryptable": 0}
    undecryptable: list[str] = []
    for model, field in COLUMNS:
        _rotate_column(model, field, batch_size, counts, undecryptable)
    return {**counts, "undecryptable_rows": undecryptable}
