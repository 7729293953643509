"""The siren service's audit rows (control.audit) and readable times for state details."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from control.audit import append_audit
from control.db import Database
from control.sirens.errors import SirensUnavailable

__all__ = ["SERVICE_ACTOR", "at", "audit", "audit_first"]

log = logging.getLogger(__name__)

# Who the audit trail names for the service's own verdicts (expired, no_answer, ended).
SERVICE_ACTOR = "control-service"


def at(ms: int) -> str:
    """``2026-09-18 02:00:05 UTC``: how state details name a moment."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def audit_first(
    db: Database, *, actor: str, action: str, target: str, params: Mapping[str, object]
) -> None:
    """Audit a step before taking it; if the trail does not take it, the step is refused."""
    try:
        await append_audit(db, actor=actor, action=action, target=target, params=params)
    except Exception as exc:
        raise SirensUnavailable(
            f"the audit trail did not take {action}, so nothing was done: {exc!r}; "
            "check the control database and try again"
        ) from exc


async def audit(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str,
    params: Mapping[str, object],
    result: str = "",
) -> None:
    """Audit a step already taken (an answer, a verdict). The step stands in its own
    records even if the trail fails, so a failure here is logged, not raised."""
    try:
        await append_audit(
            db, actor=actor, action=action, target=target, params=params, result=result
        )
    except Exception:
        log.exception("sirens: could not audit %s of %s (%s)", action, target, result)
