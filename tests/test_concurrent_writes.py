"""Concurrent writes: an edit made from a stale copy of a trigger writes only what it changes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from triggers import deliveries, services
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def trigger(tenant_a, alice):
    return services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo")


def _stale(trigger) -> Trigger:
    return Trigger.objects.get(pk=trigger.pk)  # what an edit request loaded before the other change


def test_a_stale_edit_after_a_token_rotation_keeps_the_new_token(trigger):
    stale = _stale(trigger)
    rotated = deliveries.trigger_rotate_token(_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.token, fresh.previous_token) == (rotated.token, trigger.token)
    assert fresh.max_scale == 2 and fresh.spec_version == 2
    assert stale.token == rotated.token  # the edited instance is read back


def test_a_stale_edit_after_a_suspension_keeps_it_suspended(trigger):
    stale = _stale(trigger)
    services.trigger_suspend(trigger=_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2, mode="async")
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert fresh.suspended and fresh.max_scale == 2 and fresh.mode == "async"


def test_a_stale_edit_after_a_resume_keeps_it_resumed(trigger):
    services.trigger_suspend(trigger=_stale(trigger))
    stale = _stale(trigger)
    services.trigger_resume(trigger=_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2)
    assert not Trigger.objects.get(pk=trigger.pk).suspended


def test_a_stale_edit_after_the_deletion_flag_is_refused_and_keeps_it(trigger):
    stale = _stale(trigger)
    Trigger.objects.filter(pk=trigger.pk).update(deleting=True)  # trigger_delete's write
    with pytest.raises(ValidationError, match="being deleted"):
        services.trigger_update(trigger=stale, max_scale=2)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert fresh.deleting and fresh.max_scale == 3


def test_two_stale_edits_of_different_fields_both_count(trigger):
    first, second = _stale(trigger), _stale(trigger)
    services.trigger_update(trigger=first, max_scale=2)
    services.trigger_update(trigger=second, min_scale=1)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.min_scale, fresh.max_scale, fresh.spec_version) == (1, 2, 3)


def test_an_api_edit_sent_after_a_suspension_keeps_it_suspended(api, alice, trigger):
    services.trigger_suspend(trigger=_stale(trigger))
    response = api(alice).patch("/api/v1/tenants/acme/triggers/hello/", {"max_scale": 2}, format="json")
    assert response.status_code == 200, response.json()
    assert Trigger.objects.get(pk=trigger.pk).suspended
