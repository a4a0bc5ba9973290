"""Settings refuse what is unsafe in production, and empty variables mean 'not set'."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from halsosamtal.core.settings import Settings

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "database_url": "postgresql://app:pw@db:5432/halsosamtal",
    "redis_url": "redis://redis:6379/0",
}
SECRET = "x" * 32


def test_production_with_the_letters_gateway_needs_no_webhook_secret() -> None:
    settings = Settings(**PRODUCTION, webhook_secret="", webhook_url="")
    assert (settings.messaging_gateway, settings.webhook_secret, settings.webhook_url) == (
        "letters",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("url", "secret", "complaint"),
    [
        (None, SECRET, "needs HALSOSAMTAL_WEBHOOK_URL and HALSOSAMTAL_WEBHOOK_SECRET"),
        ("https://notify.example", None, "needs HALSOSAMTAL_WEBHOOK_URL and HALSOSAMTAL_WEBHOOK_SECRET"),
        ("https://notify.example", "short", "at least 32 bytes"),
        ("http://notify.example", SECRET, "must be https"),
    ],
)
def test_production_refuses_an_unsafe_webhook(url: str | None, secret: str | None, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(**PRODUCTION, messaging_gateway="webhook", webhook_url=url, webhook_secret=secret)


def test_production_accepts_https_or_loopback_http_with_a_long_secret() -> None:
    for url in ("https://notify.example/v1", "http://127.0.0.1:9000/hook"):
        Settings(**PRODUCTION, messaging_gateway="webhook", webhook_url=url, webhook_secret=SECRET)


def test_production_needs_both_urls() -> None:
    with pytest.raises(ValidationError, match="production needs DATABASE_URL, REDIS_URL"):
        Settings(environment="production")


def test_the_queue_follows_the_database_unless_named() -> None:
    assert Settings(database_name="halsosamtal_a").queue_name == "halsosamtal:halsosamtal_a:queue"
    assert Settings(database_url="postgresql://h/regionen").queue_name == "halsosamtal:regionen:queue"
    assert Settings(queue_name="mine").queue_name == "mine"


def test_the_repr_of_settings_shows_no_secret() -> None:
    shown = repr(Settings(**PRODUCTION, webhook_secret=SECRET))
    assert SECRET not in shown
    assert ":pw@" not in shown
    assert "postgresql://app:***@db:5432/halsosamtal" in shown
