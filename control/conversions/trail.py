"""The conversion service's audit rows (control.audit)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from control.audit import append_audit
from control.conversions.errors import Unavailable
from control.db import Database

__all__ = ["SERVICE_ACTOR", "audit", "audit_first"]

log = logging.getLogger(__name__)

# Who the audit trail names for the service's own verdicts (verified, regressed, expired).
SERVICE_ACTOR = "control-service"


async def audit_first(
    db: Database, actor: str, action: str, target: str, params: Mapping[str, object]
) -> None:
    """Audit a request before acting on it; if the trail does not take it, nothing is done."""
    try:
        await append_audit(db, actor=actor, action=action, target=target, params=params)
    except Exception as exc:
        raise Unavailable(
            f"the audit trail did not take {action}, so nothing was done: {exc!r}; "
            "check the control database and try again"
        ) from exc


async def audit(
    db: Database,
    actor: str,
    action: str,
    target: str,
    params: Mapping[str, object],
    result: str,
) -> None:
    """Audit a step already taken: it stands in its own records even if the trail fails, so
    a failure here is logged, not raised."""
    try:
        await append_audit(
            db, actor=actor, action=action, target=target, params=params, result=result
        )
    except Exception:
        log.exception("conversions: could not audit %s of %s (%s)", action, target, result)
