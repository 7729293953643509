"""Webhook signatures, retry pauses, severity filters and webhook settings."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from control.alerts.webhooks import retry_delay, sign, verify, wants
from control.settings import AlertSettings, WebhookSettings

SECRET = "s3cret-s3cret-s3cret"


def hook(**kw: object) -> WebhookSettings:
    values: dict[str, object] = {"name": "ops", "url": "https://ops.example/hook", "secret": SECRET}
    return WebhookSettings.model_validate(values | kw)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"raised"}'
    expected = hmac.new(SECRET.encode(), b"1758160920000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1758160920000, body) == f"sha256={expected}"


def test_a_receiver_accepts_a_fresh_signature_and_nothing_else() -> None:
    body = b'{"a":1}'
    now = 1_758_160_920_000
    good = sign(SECRET, now, body)
    assert verify(SECRET, str(now), good, body, now_ms=now + 1000)
    assert not verify(SECRET, str(now), good, b'{"a":2}', now_ms=now)  # body changed
    assert not verify("another-secret-0000", str(now), good, body, now_ms=now)
    assert not verify(SECRET, str(now + 1), good, body, now_ms=now)  # timestamp changed
    assert not verify(SECRET, str(now), good, body, now_ms=now + 301_000)  # a replay
    assert not verify(SECRET, "yesterday", good, body, now_ms=now)


def test_retry_pauses_grow_to_the_cap_with_jitter() -> None:
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (30, 60.0)]:
        for _ in range(50):
            delay = retry_delay(attempts, 2.0, 60.0)
            assert ceiling / 2 <= delay <= ceiling, (attempts, delay)
    assert len({retry_delay(4, 2.0, 60.0) for _ in range(20)}) > 1


def test_min_severity_filters_alerts() -> None:
    major = hook(min_severity="major")
    assert wants(major, "critical") and wants(major, "major")
    assert not wants(major, "minor") and not wants(major, "warning")
    assert wants(hook(), "warning")


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)
    w = WebhookSettings.model_validate(
        {"name": "ops", "url": "https://ops.example/hook", "secret_env": "OPS_WEBHOOK_SECRET"}
    )
    assert w.secret.get_secret_value() == SECRET
    assert SECRET not in repr(w)
    monkeypatch.delenv("OPS_WEBHOOK_SECRET")
    with pytest.raises(ValidationError, match="OPS_WEBHOOK_SECRET is not set"):
        WebhookSettings.model_validate(
            {"name": "ops", "url": "https://ops.example/hook", "secret_env": "OPS_WEBHOOK_SECRET"}
        )


def test_weak_or_missing_secrets_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        hook(secret="")
    with pytest.raises(ValidationError, match="at least 16"):
        hook(secret="short")
    with pytest.raises(ValidationError, match="own name"):
        AlertSettings(webhooks=[hook(), hook()])
    with pytest.raises(ValidationError):
        hook(name="Not A Slug")
    assert AlertSettings().repeat_critical_s == 900
