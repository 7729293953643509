"""Site postures from the control service, for the alert engine's posture-gated rules.

The control service publishes each site's declared posture (peacetime, converting,
wartime), retained, on ``{p}/posture/{site}`` when a conversion order moves it
(docs/contract.md, docs/conversion.md). The collector subscribes to ``posture_filter`` (not
shared between collectors: every member needs every site's posture, and a retained message
reaches each subscription), reads each message with ``read_posture`` in arrival order with the
telemetry, and hands it to ``apply_posture``, which calls ``AlertEngine.set_posture``.

A posture message overrides the collector's configured ``postures``/``default_posture`` for
its site. A malformed one is logged once per topic and dropped; the site keeps the posture it
had. Pure of IO: no MQTT here, the collector's session delivers the messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from shelterwatch.contract import Posture, SitePosture, TopicKind, parse_topic
from shelterwatch.errors import ContractError

__all__ = ["PostureSink", "PostureUpdate", "apply_posture", "posture_filter", "read_posture"]

log = logging.getLogger(__name__)

_warned: set[str] = set()


class PostureSink(Protocol):
    """What ``apply_posture`` needs of the alert engine."""

    def set_posture(self, site: str, posture: Posture, now_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PostureUpdate:
    site: str
    posture: Posture
    ts_ms: int
    order: str | None = None


def posture_filter(prefix: str) -> str:
    return f"{prefix}/posture/+"


def read_posture(topic: str, payload: bytes, prefix: str) -> PostureUpdate | None:
    """The posture a message declares; None for another topic, or a malformed message."""
    if not topic.startswith(f"{prefix}/posture/"):
        return None
    try:
        parsed = parse_topic(topic, prefix)
        if parsed.kind is not TopicKind.POSTURE:
            return None
        if not payload:
            return None  # a retained posture removed by hand: nothing declared
        body = SitePosture.model_validate_json(payload)
    except (ContractError, ValidationError) as exc:
        if topic not in _warned:
            _warned.add(topic)
            log.warning("collector: dropped a malformed posture on %s: %s", topic, exc)
        return None
    return PostureUpdate(parsed.site, body.posture, body.ts, body.order)


def apply_posture(engine: PostureSink, update: PostureUpdate, now_ms: int) -> None:
    engine.set_posture(update.site, update.posture, now_ms)
    log.info(
        "collector: site %s is now in %s posture%s",
        update.site,
        update.posture,
        f" (conversion {update.order})" if update.order else "",
    )
