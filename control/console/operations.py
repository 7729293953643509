"""Alerts, sirens and activations: the pages a duty officer acts from.

The pages only show; every action is a script's call to the JSON API (acknowledge, preview,
request, approve, reject, cancel), so the console has exactly the API's rules, roles and
audit rows, and no second code path to keep in step.

Each page shows only what lies in the caller's area: its alerts, its siren posts, the groups
that lie wholly in it (a group reaching beyond it would be refused whole, so it is not
offered), and the activations with a siren in it, showing only those sirens. An activation
with none answers 404, as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from control.alerts import AlertService
from control.api.deps import Allow
from control.api.siren_errors import http_error
from control.areas import Scope
from control.auth import Permission, Principal, allows
from control.console.render import render
from control.console.scope import CallerScope
from control.db import SirenGroup, SirenPost
from control.sirens import KIND_PERMISSION, SirenError, SirenService
from control.sirens import inventory as inv
from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = ["router"]

router = APIRouter()

AlertReader = Annotated[Principal, Allow(Permission.ALERTS_READ)]
SirenReader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
Severity = Literal["critical", "major", "minor", "warning"]


def _offered(scope: Scope, group: SirenGroup, posts: list[SirenPost]) -> bool:
    """Whether the sirens dialog offers ``group``: it has sirens, and all of them lie in the
    caller's area (the API refuses a group that reaches beyond it, whole)."""
    members = set(inv.group_sirens(group, posts))
    sites = [p.site for p in posts if p.id in members]
    return bool(sites) and scope.covers_sites(sites)


@router.get("/alerts")
async def alerts_page(
    request: Request,
    user: AlertReader,
    scope: CallerScope,
    state: Literal["active", "all"] = "active",
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    severity: Severity | None = None,
) -> Response:
    service: AlertService = request.state.alerts
    rows = await service.recent(
        active_only=state == "active", site=site, severity=severity, limit=500, scope=scope
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
    scope: CallerScope,
    district: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
) -> Response:
    service: SirenService = request.state.sirens
    every_post = await inv.list_sirens(service.db)
    posts = [p for p in every_post if scope.has_site(p.site)]
    if scope.unlimited:
        groups = [g.name for g in await inv.list_groups(service.db)]
    else:
        groups = [
            g.name
            for g in await inv.list_groups(service.db, 100_000)
            if _offered(scope, g, every_post)
        ]
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
            "groups": groups,
            "kinds": [k.value for k in kinds],
            "signals": service.signals.all(),
            "activations": await service.recent(limit=20, scope=scope),
        },
        user=user,
    )


@router.get("/activations/{activation_id}")
async def activation_page(
    request: Request,
    user: SirenReader,
    scope: CallerScope,
    activation_id: Annotated[str, Path(pattern=r"^act-[0-9a-f]{12}$")],
) -> Response:
    service: SirenService = request.state.sirens
    try:
        activation = await service.get(activation_id, scope=scope)
    except SirenError as exc:
        raise http_error(exc) from exc
    # A decision is taken for every siren at once: with some outside the caller's area the
    # API refuses it, so the page does not offer it.
    whole = activation.targets_outside_scope == 0
    may_start = whole and allows(user.role, KIND_PERMISSION[SirenKind(activation.kind)])
    return render(
        request,
        "activation",
        {
            "a": activation,
            "may_decide": (
                activation.state == "pending_approval"
                and whole
                and allows(user.role, Permission.COMMANDS_APPROVE)
                and activation.requested_by.casefold() != user.username.casefold()
            ),
            "may_cancel": not activation.final and may_start,
        },
        user=user,
    )
