"""Open websockets follow access: removal, tenant deletion, deactivation and sign-out close them (code 4403,
saying why) through the Redis channel layer; a socket whose access was restored stays open."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.test import Client

from tenants import services
from tenants.models import Membership, Role
from tests.conftest import PASSWORD
from tests.live.test_consumers import connect
from triggers.live import broadcast

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(path, user):
    communicator, connected = await connect(path, user)
    assert connected, path
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    return communicator


async def assert_revoked(communicator, reason):
    assert await communicator.receive_json_from(timeout=5) == {"type": "access.revoked", "reason": reason}
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": broadcast.ACCESS_REVOKED_CODE}


async def test_a_removed_member_s_socket_closes_saying_why_and_her_other_tenant_stays(charlie, tenant_a, tenant_b):
    await sync_to_async(Membership.objects.create)(tenant=tenant_a, user=charlie, role=Role.VIEWER)
    acme, globex = await open_socket("/ws/tenants/acme/", charlie), await open_socket("/ws/tenants/globex/", charlie)
    membership = await sync_to_async(Membership.objects.select_related("tenant").get)(tenant=tenant_a, user=charlie)
    await sync_to_async(services.membership_remove)(membership=membership)
    await assert_revoked(acme, "You are no longer a member of Acme.")
    assert await globex.receive_nothing(timeout=0.5)
    await globex.disconnect()


async def test_deleting_a_tenant_closes_every_member_s_socket(alice, bob, tenant_a):
    owner, viewer = await open_socket("/ws/tenants/acme/", alice), await open_socket("/ws/tenants/acme/", bob)
    await sync_to_async(services.tenant_delete)(tenant=tenant_a)
    for communicator in (owner, viewer):
        await assert_revoked(communicator, "Acme is being deleted.")
    communicator, connected = await connect("/ws/tenants/acme/", alice)
    assert connected is False  # nor may a new one open on a tenant being deleted


async def test_deactivating_a_user_closes_her_sockets(bob, tenant_a):
    viewer = await open_socket("/ws/tenants/acme/", bob)
    bob.is_active = False
    await sync_to_async(bob.save)()
    await assert_revoked(viewer, "Your account has been deactivated.")


async def test_demoting_an_operator_closes_the_operators_socket(staff):
    ops = await open_socket("/ws/ops/", staff)
    staff.is_staff = False
    await sync_to_async(staff.save)()
    await assert_revoked(ops, "You are no longer an operator.")


def signed_in_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


async def socket_of(client: Client, path: str):
    from channels.testing import WebsocketCommunicator

    from relayweb.asgi import application

    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(application, path, headers=[
        (b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    return communicator


async def test_signing_out_closes_that_session_s_sockets_and_not_her_other_browser_s(bob, tenant_a):
    laptop, phone = await sync_to_async(signed_in_client)(bob), await sync_to_async(signed_in_client)(bob)
    on_laptop, on_phone = await socket_of(laptop, "/ws/tenants/acme/"), await socket_of(phone, "/ws/tenants/acme/")
    response = await sync_to_async(laptop.post)("/logout/")
    assert response.status_code == 302
    await assert_revoked(on_laptop, "You signed out.")
    assert await on_phone.receive_nothing(timeout=0.5)
    await on_phone.disconnect()


async def test_a_socket_whose_access_was_restored_stays_open(bob, tenant_a):
    viewer = await open_socket("/ws/tenants/acme/", bob)

    def remove_and_add_back():
        with transaction.atomic():  # the message goes after commit, when bob is a member again
            membership = Membership.objects.select_related("tenant").get(tenant=tenant_a, user=bob)
            services.membership_remove(membership=membership)
            Membership.objects.create(tenant=tenant_a, user=bob, role=Role.VIEWER)

    await sync_to_async(remove_and_add_back)()
    assert await viewer.receive_nothing(timeout=1)
    await sync_to_async(broadcast.trigger_status)(
        await sync_to_async(tenant_a.triggers.create)(name="still-live", image="kubesim/echo"))
    assert (await viewer.receive_json_from(timeout=5))["type"] == "trigger.status"
    await viewer.disconnect()
