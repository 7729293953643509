"""Pre-filling a siren activation request from an upstream authority's CAP 1.2 message.

``suggest`` reads the message (control.cap.parse_alert refuses what it cannot act on, with
line numbers) and finds the siren posts its areas reach. ``request`` makes the activation
through the siren service, exactly as a person's request: a live alert still waits for a
second person's approval. The message is stored (direction ``in``) and audited
(``cap.receive``) with the activation it pre-filled; the same message twice is refused, so
one upstream alert makes one request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from control.audit import append_audit
from control.cap import CapRefused, CapRequest, MsgType, parse_alert
from control.capfeed import records
from control.capfeed.areas import Match, match_posts
from control.db import Database, SirenPost
from control.sirens import Conflict, SirenService
from control.sirens.models import ActivationPublic
from shelterwatch.contract import SirenKind

__all__ = ["NoSirenInArea", "Suggestion", "request", "suggest"]

log = logging.getLogger(__name__)

# The siren service's limits on a request's reason and exercise label.
_REASON_MAX = 2000
_EXERCISE_MAX = 128


class NoSirenInArea(CapRefused):
    pass


@dataclass(frozen=True, slots=True)
class Suggestion:
    cap: CapRequest
    kind: SirenKind
    signal: str | None
    exercise: str | None
    reason: str
    matches: list[Match]

    @property
    def targets(self) -> list[str]:
        return [m.siren for m in self.matches]


async def suggest(
    db: Database,
    xml: bytes,
    *,
    language: str,
    signal: str | None = None,
    visible: Callable[[SirenPost], bool] | None = None,
) -> Suggestion:
    """Read ``xml`` and find its sirens. Raises CapError (a ValueError) saying what is wrong.

    ``visible`` says which posts the caller may see: a message that reaches none of those is
    answered as one that reaches no siren at all, so a caller learns nothing about sirens of
    another area from where the message's circles fall."""
    cap = parse_alert(xml, language=language)
    if cap.msg_type is MsgType.CANCEL:
        raise CapRefused(
            f"{cap.identifier} is a Cancel: an upstream Cancel stops nothing by itself. "
            "Cancel the activation it pre-filled (GET /api/v1/cap lists inbound messages "
            "with their activation) with POST /api/v1/activations/{id}/cancel"
        )
    async with db.session() as s:
        posts = list(await s.scalars(select(SirenPost)))
    matches = match_posts(posts, cap.areas)
    if visible is not None:
        seen = {post.id for post in posts if visible(post)}
        if not any(match.siren in seen for match in matches):
            matches = []
    if not matches:
        names = "; ".join(a.description for a in cap.areas) or "(none)"
        raise NoSirenInArea(
            f"no siren post is in the message's areas ({names}): no coverage circle meets "
            "its circles or polygons and no district matches an areaDesc. Check the siren "
            "inventory's positions and districts, or make the request by hand"
        )
    kind = cap.kind
    chosen = signal or cap.signal
    if chosen is None and kind in (SirenKind.LIVE, SirenKind.DRILL):
        raise CapRefused(
            f"the message's event {cap.event!r} names no signal Shelterwatch knows: give "
            "`signal` in the request body (GET /api/v1/signals lists them)"
        )
    exercise = cap.exercise[:_EXERCISE_MAX] if kind is SirenKind.DRILL and cap.exercise else None
    return Suggestion(
        cap=cap,
        kind=kind,
        signal=chosen,
        exercise=exercise,
        reason=cap.reason[:_REASON_MAX],
        matches=matches,
    )


async def request(
    db: Database, sirens: SirenService, found: Suggestion, xml: bytes, *, actor: str
) -> ActivationPublic:
    """Make the activation request, store the message with it, and audit both together.
    Raises Conflict if this upstream message pre-filled a request before."""
    cap = found.cap
    row = await records.insert(
        db,
        {
            "direction": records.IN,
            "identifier": cap.identifier,
            "sender": cap.sender,
            "msg_type": cap.msg_type.value,
            "status": cap.status.value,
            "activation": None,
            "references": " ".join(
                f"{r.sender},{r.identifier},{r.sent.isoformat()}" for r in cap.references
            ),
            "sent_ms": int(cap.sent.timestamp() * 1000),
            "xml": xml.decode("utf-8", errors="replace"),
            "actor": actor[:128],
        },
    )
    if row is None:
        earlier = await records.find(db, records.IN, cap.sender, cap.identifier)
        made = earlier.activation if earlier and earlier.activation else "a request"
        raise Conflict(
            f"CAP {cap.identifier} from {cap.sender} was read before and pre-filled {made}; "
            "one upstream message makes one request"
        )
    try:
        activation = await sirens.request(
            kind=found.kind,
            signal=found.signal,
            sirens=found.targets,
            groups=[],
            actor=actor,
            reason=found.reason,
            exercise=found.exercise,
        )
    except Exception:
        # Refused: forget the message, so that it can be tried again once fixed.
        await records.delete(db, row.id)
        raise
    await records.set_activation(db, row.id, activation.id)
    log.warning(
        "cap: upstream %s from %s (%s) pre-filled %s %s on %d sirens by %s",
        cap.identifier,
        cap.sender,
        cap.status.value,
        found.kind.value,
        activation.id,
        len(found.targets),
        actor,
    )
    try:
        await append_audit(
            db,
            actor=actor,
            action="cap.receive",
            target=activation.id,
            params={
                "identifier": cap.identifier,
                "sender": cap.sender,
                "sent": cap.sent.isoformat(),
                "status": cap.status.value,
                "msg_type": cap.msg_type.value,
                "targets": found.targets,
            },
            result="requested",
        )
    except Exception:
        log.exception("cap: could not audit upstream %s for %s", cap.identifier, activation.id)
    return activation
