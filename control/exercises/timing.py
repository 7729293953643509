"""How fast each area responded to each situation, from the rows and the audit trail.

For a situation injected at the audit row ``inject_seq`` (time ``injected_ms``):

- detected: the first alert labelled as the situation's (its ``raised_ts``), or the first
  failed outcome at its site (a siren that failed or did not answer, a conversion step that
  failed, a command to its gateway that failed, timed out or was refused), after the inject;
- acknowledged: the first audit row ``alerts.ack`` of one of those alerts;
- acted: the first audit row after the inject of one of the kind's actions that concerns
  the site, by a person whose area covers it (a command, an activation, a conversion order
  or step, a work order; a work order made for an alert counts for that alert's situation
  only). An acknowledgement is not an action: every one carries a comment, so its note
  would make the two times the same;
- resolved: the repair of the fault (its audit row), or the moment the last of its alerts
  cleared, whichever came first.

People's steps are read from the audit trail, so the report shows exactly the times and
names the trail holds (``audit_seq`` says which row). Everything is bounded by the
exercise's end: a situation nobody acknowledged or acted on by then is missed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.areas import AreaTree
from control.db import (
    AuditEntry,
    CommandRecord,
    ConversionStep,
    ConversionTarget,
    Database,
    Exercise,
    ExerciseSituation,
    SirenTarget,
    User,
    WorkOrder,
)
from control.db.models import AlertRecord
from control.exercises.library import SituationKind
from control.exercises.models import SituationTiming, Stage

__all__ = ["timings"]

_FAILED_TARGETS = ("unreachable", "failed", "no_answer", "test_failed")
_FAILED_COMMANDS = ("failed", "timed_out", "rejected", "expired")
ALERT_ENGINE = "alert engine"
ACK_ACTION = "alerts.ack"
# The first word of a failure's description -> the library's name for its source.
_SOURCE = {"siren": "siren_target", "conversion": "conversion_step", "command": "command"}


@dataclass
class _Facts:
    """What the rows and the trail say, loaded once for all situations."""

    alerts: dict[int, AlertRecord] = field(default_factory=dict)
    rows: list[AuditEntry] = field(default_factory=list)
    # Audit row seq -> the sites it concerns.
    row_sites: dict[int, frozenset[str]] = field(default_factory=dict)
    user_area: dict[str, str | None] = field(default_factory=dict)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (ms, site, what)


async def timings(
    db: Database,
    exercise: Exercise,
    situations: Sequence[ExerciseSituation],
    links: Mapping[str, list[int]],
    kinds: Mapping[str, SituationKind],
    tree: AreaTree,
    until_ms: int,
) -> list[SituationTiming]:
    if not situations:
        return []
    facts = await _load(db, situations, links, kinds, tree, until_ms)
    ended = exercise.state == "ended"
    return [
        _timing(s, links.get(s.id, []), kinds.get(s.kind), facts, tree, ended, until_ms)
        for s in situations
    ]


async def _load(
    db: Database,
    situations: Sequence[ExerciseSituation],
    links: Mapping[str, list[int]],
    kinds: Mapping[str, SituationKind],
    tree: AreaTree,
    until_ms: int,
) -> _Facts:
    facts = _Facts()
    first_seq = min(s.inject_seq for s in situations)
    first_ms = min(s.injected_ms for s in situations)
    sites = sorted({s.site for s in situations})
    gateways = {s.gateway: s.site for s in situations if s.gateway}
    actions = {a for k in kinds.values() for a in k.actions} | {ACK_ACTION}
    alert_ids = sorted({a for ids in links.values() for a in ids})
    async with db.session() as s:
        if alert_ids:
            query = select(AlertRecord).where(AlertRecord.id.in_(alert_ids))
            facts.alerts = {a.id: a for a in await s.scalars(query)}
        rows = await s.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.seq > first_seq,
                AuditEntry.ts_ms <= until_ms,
                AuditEntry.action.in_(sorted(actions)),
            )
            .order_by(AuditEntry.seq)
        )
        facts.rows = list(rows)
        actors = sorted({r.actor for r in facts.rows})
        if actors:
            users = await s.execute(
                select(User.username, User.area).where(User.username.in_(actors))
            )
            facts.user_area = {name: area for name, area in users.all()}
        facts.row_sites = await _row_sites(s, facts.rows, tree)
        for target in await s.scalars(
            select(SirenTarget).where(
                SirenTarget.site.in_(sites),
                SirenTarget.state.in_(_FAILED_TARGETS),
                SirenTarget.updated_ms >= first_ms,
                SirenTarget.updated_ms <= until_ms,
            )
        ):
            at = target.finished_ms or target.updated_ms
            facts.failures.append(
                (at, target.site, f"siren {target.siren} {target.state} ({target.activation_id})")
            )
        steps = await s.execute(
            select(ConversionStep, ConversionTarget.site, ConversionTarget.order_id)
            .join(ConversionTarget, ConversionStep.target_id == ConversionTarget.id)
            .where(
                ConversionTarget.site.in_(sites),
                ConversionStep.state == "failed",
                ConversionStep.updated_ms >= first_ms,
                ConversionStep.updated_ms <= until_ms,
            )
        )
        for step, site, order in steps.all():
            facts.failures.append(
                (step.updated_ms, site, f"conversion step {step.step} failed ({order})")
            )
        if gateways:
            for command in await s.scalars(
                select(CommandRecord).where(
                    CommandRecord.gateway.in_(sorted(gateways)),
                    CommandRecord.state.in_(_FAILED_COMMANDS),
                    CommandRecord.updated_ms >= first_ms,
                    CommandRecord.updated_ms <= until_ms,
                )
            ):
                facts.failures.append(
                    (
                        command.updated_ms,
                        gateways[command.gateway],
                        f"command {command.id} to {command.gateway} {command.state}",
                    )
                )
    facts.failures.sort()
    return facts


async def _row_sites(
    s: AsyncSession, rows: Sequence[AuditEntry], tree: AreaTree
) -> dict[int, frozenset[str]]:
    """The sites each audit row acted on, from its target (an activation, an order, a work
    order, a gateway, an alert) and, for a confirmation, the site it names."""
    firsts = {r.seq: (r.target.split() or [""])[0] for r in rows}
    activations = {t for r in rows if r.action.startswith("siren.") for t in [firsts[r.seq]]}
    orders = {t for r in rows if r.action.startswith("conversion.") for t in [firsts[r.seq]]}
    work = {t for r in rows if r.action.startswith("work_orders.") for t in [firsts[r.seq]]}
    by_activation: dict[str, set[str]] = {}
    by_order: dict[str, set[str]] = {}
    by_work: dict[str, str] = {}
    if activations:
        query = select(SirenTarget.activation_id, SirenTarget.site).where(
            SirenTarget.activation_id.in_(sorted(activations))
        )
        for activation, site in (await s.execute(query)).all():
            by_activation.setdefault(activation, set()).add(site)
    if orders:
        query2 = select(ConversionTarget.order_id, ConversionTarget.site).where(
            ConversionTarget.order_id.in_(sorted(orders))
        )
        for order, site in (await s.execute(query2)).all():
            by_order.setdefault(order, set()).add(site)
    if work:
        query3 = select(WorkOrder.id, WorkOrder.site).where(WorkOrder.id.in_(sorted(work)))
        by_work = {order: site for order, site in (await s.execute(query3)).all()}
    out: dict[int, frozenset[str]] = {}
    for row in rows:
        first = firsts[row.seq]
        sites: set[str] = set()
        if row.action.startswith("siren."):
            sites |= by_activation.get(first, set())
        elif row.action == "conversion.confirm":
            named = _params(row).get("site")
            sites |= {named} if isinstance(named, str) else by_order.get(first, set())
        elif row.action.startswith("conversion."):
            sites |= by_order.get(first, set())
        elif row.action.startswith("work_orders."):
            if first in by_work:
                sites.add(by_work[first])
        elif row.action == "command.send":
            placed = tree.site_of_gateway(first)
            if placed is not None:
                sites.add(placed)
        elif row.action == ACK_ACTION:
            # "alert:<id> <site>/<rule>/<device>"
            parts = row.target.split()
            if len(parts) > 1:
                sites.add(parts[1].split("/")[0])
        out[row.seq] = frozenset(sites)
    return out


def _params(row: AuditEntry) -> dict[str, object]:
    try:
        parsed = json.loads(row.params)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _acked_alert(row: AuditEntry) -> int | None:
    if row.action != ACK_ACTION or row.result != "acknowledged":
        return None
    first = (row.target.split() or [""])[0]
    if not first.startswith("alert:"):
        return None
    try:
        return int(first.removeprefix("alert:"))
    except ValueError:
        return None


def _covers(tree: AreaTree, area: str | None, site: str) -> bool:
    if area is None or tree.empty or area == tree.root_code():
        return True
    return site in tree.areas and tree.covers(area, site)


def _stage(situation: ExerciseSituation, at: int, **kw: object) -> Stage:
    return Stage(at_ms=at, after_ms=at - situation.injected_ms, **kw)  # type: ignore[arg-type]


def _timing(
    situation: ExerciseSituation,
    alert_ids: list[int],
    kind: SituationKind | None,
    facts: _Facts,
    tree: AreaTree,
    ended: bool,
    until_ms: int,
) -> SituationTiming:
    alerts = [facts.alerts[a] for a in alert_ids if a in facts.alerts]
    start = situation.injected_ms

    detected = Stage()
    candidates: list[tuple[int, str, str]] = [
        (a.raised_ts, ALERT_ENGINE, f"alert {a.id} {a.rule}/{a.device} ({a.severity})")
        for a in alerts
        if a.raised_ts >= start
    ]
    sources = set(kind.failures) if kind else set()
    for ms, site, what in facts.failures:
        if site != situation.site or ms < start:
            continue
        if _SOURCE.get(what.split()[0]) in sources:
            candidates.append((ms, "gateway", what))
    if candidates:
        ms, by, what = min(candidates)
        detected = _stage(situation, ms, by=by, area=situation.area, what=what)

    acknowledged = Stage()
    acted = Stage()
    linked = set(alert_ids)
    actions = set(kind.actions) if kind else set()
    for row in facts.rows:
        if row.seq <= situation.inject_seq:
            continue
        acked = _acked_alert(row)
        if acknowledged.at_ms is None and acked is not None and acked in linked:
            acknowledged = _stage(
                situation,
                row.ts_ms,
                by=row.actor,
                area=facts.user_area.get(row.actor),
                what=f"acknowledged alert {acked}",
                audit_seq=row.seq,
            )
        if (
            acted.at_ms is None
            and row.action in actions
            and _acts(row, situation, linked, facts, tree)
        ):
            acted = _stage(
                situation,
                row.ts_ms,
                by=row.actor,
                area=facts.user_area.get(row.actor),
                what=f"{row.action} {row.target}".strip(),
                audit_seq=row.seq,
            )
        if acknowledged.at_ms is not None and acted.at_ms is not None:
            break

    resolved = Stage()
    ends: list[tuple[int, Stage]] = []
    if situation.repaired_ms is not None and situation.repaired_ms <= until_ms:
        ends.append(
            (
                situation.repaired_ms,
                _stage(
                    situation,
                    situation.repaired_ms,
                    by=situation.repaired_by,
                    area=facts.user_area.get(situation.repaired_by or ""),
                    what="fault repaired",
                    audit_seq=situation.repair_seq,
                ),
            )
        )
    cleared = [a.cleared_ts for a in alerts]
    if alerts and all(c is not None and c <= until_ms for c in cleared):
        last = max(c for c in cleared if c is not None)
        ends.append(
            (
                last,
                _stage(
                    situation, last, by=ALERT_ENGINE, area=situation.area, what="alerts cleared"
                ),
            )
        )
    if ends:
        resolved = min(ends, key=lambda e: e[0])[1]

    responded = acknowledged.at_ms is not None or acted.at_ms is not None
    status: str
    if responded:
        status = "resolved" if resolved.at_ms is not None else "responded"
    else:
        status = "missed" if ended else "open"
    return SituationTiming(
        exercise=situation.exercise_id,
        situation=situation.id,
        kind=situation.kind,
        site=situation.site,
        area=situation.area,
        injected_ms=situation.injected_ms,
        inject_seq=situation.inject_seq,
        detected=detected,
        acknowledged=acknowledged,
        acted=acted,
        resolved=resolved,
        status=status,  # type: ignore[arg-type]
    )


def _acts(
    row: AuditEntry,
    situation: ExerciseSituation,
    linked: set[int],
    facts: _Facts,
    tree: AreaTree,
) -> bool:
    if row.actor not in facts.user_area:
        return False  # the service itself, or nobody we know: not a person's response
    if situation.site not in facts.row_sites.get(row.seq, frozenset()):
        return False
    if not _covers(tree, facts.user_area[row.actor], situation.site):
        return False
    alert = _params(row).get("alert_id")
    if row.action == "work_orders.create" and isinstance(alert, int):
        # A work order made for an alert is about that alert's situation, not its neighbours'.
        return alert in linked
    return True
