"""Live updates for open console pages: Server-Sent Events fed by polling the database.

Why polling, not hooks: the control service may run as several replicas over one
PostgreSQL. An alert recorded or a siren answer taken by replica A must reach a browser
connected to replica B; an in-process hook on A would never tell B. Every replica reads the
same tables, so a poll sees every change whoever made it. The cost is bounded: one small
query pair per second per replica (the snapshot is shared by all streams of the process,
however many tabs are open), and an update shows up to a second late.

Events (``event:`` name, JSON ``data:``):

- ``alerts``: an alert was raised, updated, acknowledged or cleared;
- ``activation`` ``{"id": ...}``: an activation or one of its sirens changed;
- ``conversion`` ``{"id": ...}``: a conversion order, one of its steps, or a posture changed;
- ``signed_out``: the session ended (logged out, expired, account disabled): stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from control.api.deps import Allow, SessionsDep
from control.auth import Permission, Principal
from control.db import (
    ConversionEvent,
    ConversionOrder,
    ConversionStep,
    ConversionTarget,
    Database,
    SirenActivation,
    SirenTarget,
    SitePostureRecord,
)
from control.db.models import AlertRecord
from control.sirens.activations import FINAL_STATES

__all__ = ["ChangeFeed", "Snapshot", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

POLL_S = 1.0
# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
# The session is checked again this often: a logout elsewhere ends the stream.
RECHECK_S = 30.0
# Activations watched: every unfinished one, and finished ones changed this recently (late
# answers can still correct a finished report).
_RECENT_MS = 3_600_000
_WATCHED = 200


@dataclass(frozen=True)
class Snapshot:
    alerts: tuple[int, int | None] = (0, None)
    # activation id → what changes when it or one of its sirens changes
    activations: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # conversion order id → its state and newest change (steps included); "" → postures
    conversions: dict[str, tuple[object, ...]] = field(default_factory=dict)

    def changes(self, newer: Snapshot) -> list[tuple[str, dict[str, str]]]:
        out: list[tuple[str, dict[str, str]]] = []
        if newer.alerts != self.alerts:
            out.append(("alerts", {}))
        for activation_id, sig in sorted(newer.activations.items()):
            if self.activations.get(activation_id) != sig:
                out.append(("activation", {"id": activation_id}))
        for order_id, sig in sorted(newer.conversions.items()):
            if self.conversions.get(order_id) != sig:
                out.append(("conversion", {"id": order_id}))
        return out


class ChangeFeed:
    """The latest snapshot, taken at most once per ``poll_s`` for all streams."""

    def __init__(self, db: Database, poll_s: float = POLL_S) -> None:
        self.db = db
        self.poll_s = poll_s
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._taken = 0.0

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._taken >= self.poll_s * 0.9:
                self._snapshot = await self._take()
                self._taken = now
            return self._snapshot

    async def _take(self) -> Snapshot:
        since = time.time_ns() // 1_000_000 - _RECENT_MS
        finals = [s.value for s in FINAL_STATES]
        async with self.db.session() as s:
            count, newest = (
                await s.execute(
                    select(func.count(AlertRecord.id), func.max(AlertRecord.updated_ts))
                )
            ).one()
            rows = (
                await s.execute(
                    select(SirenActivation.id, SirenActivation.state, SirenActivation.updated_ms)
                    .where(
                        or_(
                            SirenActivation.state.not_in(finals),
                            SirenActivation.updated_ms >= since,
                        )
                    )
                    .order_by(SirenActivation.updated_ms.desc())
                    .limit(_WATCHED)
                )
            ).all()
            sigs: dict[str, list[object]] = {r[0]: [r[1], r[2]] for r in rows}
            if sigs:
                targets = (
                    await s.execute(
                        select(
                            SirenTarget.activation_id,
                            SirenTarget.state,
                            func.count(SirenTarget.id),
                            func.max(SirenTarget.updated_ms),
                        )
                        .where(SirenTarget.activation_id.in_(list(sigs)))
                        .group_by(SirenTarget.activation_id, SirenTarget.state)
                        .order_by(SirenTarget.activation_id, SirenTarget.state)
                    )
                ).all()
                for activation_id, state, n, newest_target in targets:
                    sigs[activation_id].append((state, n, newest_target))
            conversions = await _conversions(s, since)
        return Snapshot(
            alerts=(int(count), newest),
            activations={k: tuple(v) for k, v in sigs.items()},
            conversions=conversions,
        )


async def _conversions(s: AsyncSession, since: int) -> dict[str, tuple[object, ...]]:
    """Open orders and recently changed ones; a step's change moves its order's signature
    (the sweep and a confirmation both touch the order's updated_ms and the step's)."""
    rows = (
        await s.execute(
            select(
                ConversionOrder.id,
                ConversionOrder.state,
                ConversionOrder.updated_ms,
                func.max(ConversionStep.updated_ms),
                func.count(ConversionEvent.id.distinct()),
            )
            .join(ConversionTarget, ConversionTarget.order_id == ConversionOrder.id)
            .join(ConversionStep, ConversionStep.target_id == ConversionTarget.id)
            .outerjoin(ConversionEvent, ConversionEvent.order_id == ConversionOrder.id)
            .where(
                or_(
                    ConversionOrder.state.in_(["pending_approval", "running"]),
                    ConversionOrder.updated_ms >= since,
                )
            )
            .group_by(ConversionOrder.id, ConversionOrder.state, ConversionOrder.updated_ms)
            .order_by(ConversionOrder.updated_ms.desc())
            .limit(_WATCHED)
        )
    ).all()
    out: dict[str, tuple[object, ...]] = {r[0]: tuple(r[1:]) for r in rows}
    newest_posture = (await s.execute(select(func.max(SitePostureRecord.updated_ms)))).scalar()
    if newest_posture is not None:
        out[""] = (newest_posture,)
    return out


def _feed(request: Request) -> ChangeFeed:
    # One per app (like the login limiter), not a global: two apps in one process stay apart.
    feed: ChangeFeed | None = getattr(request.app.state, "change_feed", None)
    if feed is None:
        feed = ChangeFeed(request.state.db)
        request.app.state.change_feed = feed
    return feed


def _event(name: str, data: dict[str, str]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream(feed: ChangeFeed, sessions: SessionsDep, token: str) -> AsyncIterator[bytes]:
    # The browser reconnects by itself after 3 s if the stream drops.
    yield b"retry: 3000\n\n"
    last = await feed.snapshot()
    quiet = checked = time.monotonic()
    failing = False
    while True:
        await asyncio.sleep(feed.poll_s)
        now = time.monotonic()
        if now - checked >= RECHECK_S:
            checked = now
            if await sessions.resolve(token) is None:
                yield _event("signed_out", {})
                return
        try:
            newer = await feed.snapshot()
        except (SQLAlchemyError, OSError) as exc:
            if not failing:
                log.warning("console: live updates cannot reach the database: %s", exc)
            failing = True
            continue
        failing = False
        for name, data in last.changes(newer):
            yield _event(name, data)
            quiet = now
        last = newer
        if now - quiet >= KEEPALIVE_S:
            yield b": keepalive\n\n"
            quiet = now


@router.get("/events")
async def events(
    request: Request,
    _user: Annotated[Principal, Allow(Permission.SITES_READ)],
    sessions: SessionsDep,
) -> StreamingResponse:
    """The event stream of every console page (see the module's docstring)."""
    # The token behind this stream: a session ended elsewhere ends the stream too.
    token = request.cookies.get(request.state.settings.cookie_name) or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:]
    return StreamingResponse(
        _stream(_feed(request), sessions, token),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
