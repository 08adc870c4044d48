import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_dependencies():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_and_redis():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"


def test_readyz_is_503_naming_redis_when_it_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["redis: ConnectionError"]
