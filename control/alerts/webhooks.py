"""Webhook deliveries: the signature, one attempt, and the pause before the next.

A receiver verifies the sender with the webhook's shared secret: HMAC-SHA256 over
``timestamp + "." + body`` (the timestamp exactly as sent in ``X-Shelterwatch-Timestamp``,
epoch milliseconds like every time in Shelterwatch), sent as ``X-Shelterwatch-Signature:
sha256=<hex>``. The timestamp is inside the MAC so a captured request cannot be replayed later
with a fresh one; rejecting old timestamps is the receiver's job (``verify`` shows how).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from dataclasses import dataclass

import httpx

from control.settings import Severity, WebhookSettings

__all__ = [
    "DELIVERY_HEADER",
    "SEVERITY_RANK",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Attempt",
    "deliver",
    "retry_delay",
    "sign",
    "verify",
    "wants",
]

# Its own generator: jitter must not move the global `random` state (see shelterwatch.backoff).
_JITTER = random.SystemRandom()

TIMESTAMP_HEADER = "X-Shelterwatch-Timestamp"
SIGNATURE_HEADER = "X-Shelterwatch-Signature"
# The notification's id (also in the signed body): receivers drop deliveries they have seen.
DELIVERY_HEADER = "X-Shelterwatch-Delivery"
SEVERITY_RANK: dict[str, int] = {"warning": 0, "minor": 1, "major": 2, "critical": 3}
# 4xx answers that may pass by themselves; any other 4xx means the request itself is refused
# (gone, unauthorised, malformed) and sending it again cannot help.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def wants(webhook: WebhookSettings, severity: Severity | str) -> bool:
    """Whether an alert of ``severity`` goes to ``webhook``."""
    return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[webhook.min_severity]


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Shelterwatch-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    max_age_s: float = 300.0,
    now_ms: int | None = None,
) -> bool:
    """What a receiver does: the signature matches, and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if abs(now - sent) > max_age_s * 1000:
        return False
    # Constant time, so the comparison does not leak how much of a forgery was right.
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_delay(attempts: int, initial_s: float, maximum_s: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: capped exponential with
    jitter, so a receiver coming back is not hit by every queued delivery at once."""
    ceiling = min(maximum_s, initial_s * 2 ** max(0, attempts - 1))
    return _JITTER.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    # No use trying again (the receiver refused the request as such).
    permanent: bool
    detail: str


async def deliver(
    client: httpx.AsyncClient,
    webhook: WebhookSettings,
    delivery_id: str,
    body: bytes,
    timeout_s: float,
) -> Attempt:
    """POST one signed notification; any 2xx is success."""
    timestamp = str(time.time_ns() // 1_000_000)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(webhook.secret.get_secret_value(), timestamp, body),
        DELIVERY_HEADER: delivery_id,
    }
    try:
        resp = await client.post(str(webhook.url), content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Attempt(False, False, f"{type(exc).__name__}: {exc}"[:500])
    if resp.is_success:
        return Attempt(True, False, f"HTTP {resp.status_code}")
    permanent = 400 <= resp.status_code < 500 and resp.status_code not in _TRANSIENT_4XX
    return Attempt(False, permanent, f"HTTP {resp.status_code} {resp.reason_phrase}"[:500])
