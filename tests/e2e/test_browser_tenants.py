import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, username):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_create_a_tenant_and_see_it_listed(page, live_server, alice, charlie):
    sign_in(page, live_server, "alice")
    expect(page.get_by_text("not a member of any tenant yet")).to_be_visible()
    page.get_by_role("link", name="Create your first tenant").click()
    page.get_by_label("Name").fill("Blue Team")
    page.get_by_label("Slug").fill("Bad Slug")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_text("Use lowercase letters")).to_be_visible()
    page.get_by_label("Slug").fill("blue")
    page.get_by_role("button", name="Create tenant").click()
    expect(page).to_have_url(f"{live_server.url}/t/blue/")
    expect(page.get_by_role("heading", name="Blue Team")).to_be_visible()
    page.goto(f"{live_server.url}/")
    expect(page.locator("#tenant-table")).to_contain_text("Blue Team")
    expect(page.locator("#tenant-table")).to_contain_text("relay-blue")


def test_another_user_does_not_see_the_tenant(page, live_server, tenant_a, charlie):
    sign_in(page, live_server, "charlie")
    expect(page.get_by_text("not a member of any tenant yet")).to_be_visible()
    response = page.goto(f"{live_server.url}/t/acme/")
    assert response.status == 404
    assert "Acme" not in page.content()
