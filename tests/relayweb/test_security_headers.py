"""Pages carry a strict Content-Security-Policy, Referrer-Policy and X-Frame-Options; /hooks/ keeps its own."""

import re

import pytest

from tests.cluster import REPO

pytestmark = pytest.mark.django_db



def policy(response) -> dict[str, list[str]]:
    directives = (part.strip().split() for part in response["Content-Security-Policy"].split(";") if part.strip())
    return {d[0]: d[1:] for d in directives}


def test_a_page_has_a_strict_policy_and_the_other_security_headers(client, alice, tenant_a):
    client.force_login(alice)
    response = client.get("/t/acme/")
    assert response.status_code == 200
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'", "ws://localhost:8000"]  # SITE_URL's websocket origin
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert not any("unsafe" in source for sources in csp.values() for source in sources)
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_websockets_of_an_https_site_are_wss(settings):
    import importlib
    import os

    import relayweb.settings as relay_settings
    os.environ["SITE_URL"] = "https://relay.example.com"
    try:
        assert importlib.reload(relay_settings).CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"] == [
            "'self'", "wss://relay.example.com"]
    finally:
        del os.environ["SITE_URL"]
        importlib.reload(relay_settings)


@pytest.mark.parametrize("path", ["/login/", "/password-reset/", "/api/docs/", "/admin/login/"])
def test_anonymous_pages_have_the_policy_too(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert policy(response)["script-src"] == ["'self'"]


def test_no_template_has_inline_scripts_styles_or_event_handlers():
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.I)
    found = [f"{path.relative_to(REPO)}: {m.group(0)}" for path in (REPO / "templates").rglob("*.html")
             for m in inline.finditer(path.read_text())]
    assert found == []


def test_the_api_docs_script_is_served_from_the_site(client):
    page = client.get("/api/docs/").content.decode()
    src = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1)
    script = client.get(src.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_admin_still_works_under_the_policy(client, staff, tenant_a):
    client.force_login(staff)
    for path in ("/admin/", "/admin/tenants/tenant/", f"/admin/tenants/tenant/{tenant_a.pk}/change/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert policy(response)["script-src"] == ["'self'"]
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>",
                             response.content.decode()), f"inline script on {path}"
