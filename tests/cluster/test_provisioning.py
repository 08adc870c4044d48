"""Tenant namespaces: provisioning failures are visible with the cluster's reason, and retried when transient."""

import pytest

from tenants.models import Tenant
from triggers.cluster import kube
from triggers.cluster.provisioning import tenant_provision

pytestmark = pytest.mark.django_db


def test_permanent_refusal_marks_the_tenant_failed_with_the_reason(cluster, kubesim, alice):
    tenant = Tenant.objects.create(slug="denied", name="Denied")
    kubesim.call(kubesim.sim.faults.add, 403, None, 1, "create", "namespaces")
    assert tenant_provision(tenant.pk) == "failed"
    tenant.refresh_from_db()
    assert tenant.state == "failed" and "Provisioning namespace relay-denied failed" in tenant.message


def test_transient_errors_raise_for_a_retry_and_leave_it_provisioning(cluster, kubesim):
    tenant = Tenant.objects.create(slug="flaky", name="Flaky")
    kubesim.call(kubesim.sim.faults.add, 503, None, 1, "create", "namespaces")
    with pytest.raises(kube.KubeError) as info:
        tenant_provision(tenant.pk)
    assert info.value.transient
    assert Tenant.objects.get(pk=tenant.pk).state == "provisioning"
    assert tenant_provision(tenant.pk) == "ready"  # the retry
