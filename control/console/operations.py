"""Alerts, sirens and activations: the pages a duty officer acts from.

The pages only show; every action is a script's call to the JSON API (acknowledge, preview,
request, approve, reject, cancel), so the console has exactly the API's rules, roles and
audit rows, and no second code path to keep in step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from control.alerts import AlertService
from control.api.deps import Allow
from control.api.siren_errors import http_error
from control.auth import Permission, Principal, allows
from control.console.render import render
from control.sirens import KIND_PERMISSION, SirenError, SirenService
from control.sirens import inventory as inv
from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = ["router"]

router = APIRouter()

AlertReader = Annotated[Principal, Allow(Permission.ALERTS_READ)]
SirenReader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
Severity = Literal["critical", "major", "minor", "warning"]


@router.get("/alerts")
async def alerts_page(
    request: Request,
    user: AlertReader,
    state: Literal["active", "all"] = "active",
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    severity: Severity | None = None,
) -> Response:
    service: AlertService = request.state.alerts
    rows = await service.recent(
        active_only=state == "active", site=site, severity=severity, limit=500
    )
    return render(
        request,
        "alerts",
        {
            "alerts": rows,
            "state": state,
            "site": site or "",
            "severity": severity or "",
            "severities": ("critical", "major", "minor", "warning"),
        },
        user=user,
    )


@router.get("/sirens")
async def sirens_page(
    request: Request,
    user: SirenReader,
    district: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
) -> Response:
    service: SirenService = request.state.sirens
    posts = await inv.list_sirens(service.db)
    districts = sorted({p.district for p in posts if p.district})
    if district:
        posts = [p for p in posts if p.district == district]
    # Only the kinds this user may start are offered; the API checks again.
    kinds = [
        k for k in SirenKind if k is not SirenKind.DRILL and allows(user.role, KIND_PERMISSION[k])
    ]
    return render(
        request,
        "sirens",
        {
            "sirens": await service.with_health(posts),
            "districts": districts,
            "district": district or "",
            "groups": [g.name for g in await inv.list_groups(service.db)],
            "kinds": [k.value for k in kinds],
            "signals": service.signals.all(),
            "activations": await service.recent(limit=20),
        },
        user=user,
    )


@router.get("/activations/{activation_id}")
async def activation_page(
    request: Request,
    user: SirenReader,
    activation_id: Annotated[str, Path(pattern=r"^act-[0-9a-f]{12}$")],
) -> Response:
    service: SirenService = request.state.sirens
    try:
        activation = await service.get(activation_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    may_start = allows(user.role, KIND_PERMISSION[SirenKind(activation.kind)])
    return render(
        request,
        "activation",
        {
            "a": activation,
            "may_decide": (
                activation.state == "pending_approval"
                and allows(user.role, Permission.COMMANDS_APPROVE)
                and activation.requested_by.casefold() != user.username.casefold()
            ),
            "may_cancel": not activation.final and may_start,
        },
        user=user,
    )
