"""The websocket Origin check compares scheme, host and port (relayweb/origins.py)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from relayweb.asgi import application
from relayweb.origins import origin_allowed, parse_origin
from tests.live.test_consumers import session_cookie


def scope(origin=None, host="localhost:8000", scheme="ws", forwarded_proto=None):
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    headers += [(b"x-forwarded-proto", forwarded_proto.encode())] if forwarded_proto else []
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://relay.example.com"
    settings.ALLOWED_HOSTS = ["localhost", "relay.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.corp.example", "http://dashboard.example:8080"]


@pytest.mark.parametrize("origin", [
    "https://relay.example.com", "https://relay.example.com:443", "https://RELAY.example.com",  # SITE_URL
    "http://localhost:8000",  # the socket's own origin (ws:// + Host), the host in ALLOWED_HOSTS
    "https://a.corp.example", "https://corp.example", "http://dashboard.example:8080",  # CSRF_TRUSTED_ORIGINS
])
def test_the_site_its_own_origin_and_trusted_origins_are_accepted(origin):
    assert origin_allowed(scope(origin)), origin


@pytest.mark.parametrize("origin", [
    "http://relay.example.com",  # foreign scheme: plain HTTP on the site's host
    "https://relay.example.com:8443",  # foreign port on the site's host
    "http://localhost:9999", "https://localhost:8000",  # same host as the socket, other port / scheme
    "http://a.corp.example", "https://a.corp.example:8443",  # trusted host, other scheme / port
    "http://dashboard.example", "https://evil.example", "https://relay.example.com.evil.example",
    "null", "", "file://", "https://relay.example.com:99999", "relay.example.com",
])
def test_foreign_schemes_ports_and_hosts_are_refused(origin):
    assert not origin_allowed(scope(origin)), origin


def test_a_missing_origin_is_refused():
    assert not origin_allowed(scope(None))


def test_the_socket_s_own_origin_counts_only_for_a_host_in_allowed_hosts():
    assert not origin_allowed(scope("http://other.example:8000", host="other.example:8000"))
    assert origin_allowed(scope("https://localhost", host="localhost", scheme="wss"))
    assert not origin_allowed(scope("http://localhost", host="localhost", scheme="wss"))


def test_behind_a_tls_proxy_the_socket_s_own_origin_is_https(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert origin_allowed(scope("https://localhost:8000", forwarded_proto="https"))
    assert not origin_allowed(scope("http://localhost:8000", forwarded_proto="https"))
    assert origin_allowed(scope("http://localhost:8000", forwarded_proto="http"))
    settings.SECURE_PROXY_SSL_HEADER = None  # not behind a proxy: a client's header means nothing
    assert not origin_allowed(scope("https://localhost:8000", forwarded_proto="https"))


def test_parse_origin_fills_in_default_ports():
    assert parse_origin("https://Relay.Example.com/") == ("https", "relay.example.com", 443)
    assert parse_origin("http://[::1]:8000") == ("http", "::1", 8000)
    assert parse_origin("ws://localhost") is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin, accepted", [
    (b"http://localhost:8000", True), (b"https://relay.example.com", True),
    (b"http://localhost:9999", False), (b"https://localhost:8000", False), (b"http://localhost", False),
    (None, False),
])
async def test_the_application_applies_the_check_to_a_signed_in_operator(staff, origin, accepted):
    headers = [(b"host", b"localhost:8000"), await sync_to_async(session_cookie)(staff)]
    headers += [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(application, "/ws/ops/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected is accepted
    await communicator.disconnect()
