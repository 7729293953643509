"""The maintenance service: item status with telemetry evidence, confirmations, work orders,
readiness. IO lives here; the rules live in the pure modules it calls (docs/maintenance.md).
"""

from __future__ import annotations

import datetime
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.alerts.records import list_alerts
from control.audit import append_audit
from control.db import Database, MaintenanceRecord, WorkOrder
from control.db.models import AlertRecord, SirenPost
from control.maintenance import records
from control.maintenance.errors import Conflict, NotFound, Unavailable
from control.maintenance.evidence import DETECTORS
from control.maintenance.models import AlertWorkOrderRequest, WorkOrderPublic, WorkOrderRequest
from control.maintenance.programme import Programme, load_programme
from control.maintenance.readiness import (
    NOT_READINGS,
    AlertFact,
    DrillFact,
    OverdueFact,
    SiteFacts,
    SiteReadiness,
    assess,
)
from control.maintenance.schedule import DAY_MS, ItemStatus, site_status
from control.settings import ControlSettings
from control.sirens import SirenService
from control.sirens import inventory as inv
from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import HistoryPoint, LatestValue, Sample, TimeSeriesStore

__all__ = [
    "DEGRADATION_KINDS",
    "READINESS_DEVICE",
    "READINESS_GATEWAY",
    "READINESS_MEASUREMENT",
    "MaintenanceService",
    "ReadinessPoint",
    "SirenFacts",
    "SweepResult",
    "now_ms",
    "order_public",
    "siren_facts",
]

log = logging.getLogger(__name__)

# Alert kinds that announce wear before a failure: a work order is the answer to them.
DEGRADATION_KINDS = frozenset({"trend"})
OPEN_STATES = ("open", "in_progress")
SCAN_MS = 300_000
# The readiness history in the time-series store: one series per site, tags site, district,
# gateway and device (the store's data model wants both; fixed names say where it comes from),
# fields score (integer), state and causes (text), so Grafana charts it with InfluxQL.
READINESS_MEASUREMENT = "readiness"
READINESS_GATEWAY = "control"
READINESS_DEVICE = "readiness"
# A report's history is read point by point up to this period; a longer one in buckets.
_RAW_HISTORY_MS = 35 * DAY_MS
_HISTORY_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class SirenFacts:
    """A site's siren posts as readiness counts them."""

    flagged: int = 0
    sirens: int = 0
    district: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessPoint:
    ts_ms: int
    score: int
    state: str
    causes: str


@dataclass(frozen=True, slots=True)
class SweepResult:
    orders: list[WorkOrderPublic]
    readiness: list[SiteReadiness]
    # Whether the readiness history reached the store (False: it was not available).
    recorded: bool


async def siren_facts(sirens: SirenService) -> dict[str, SirenFacts]:
    """Per site: its flagged siren posts (last test failed, or disabled), how many it has, and
    its district (the first of its posts' districts, as the fleet view takes it)."""
    health = await sirens.with_health(await inv.list_sirens(sirens.db))
    out: dict[str, SirenFacts] = {}
    for site in sorted({h.site for h in health}):
        at_site = [h for h in health if h.site == site]
        districts = sorted({h.district for h in at_site if h.district})
        out[site] = SirenFacts(
            sum(1 for h in at_site if h.flagged), len(at_site), districts[0] if districts else ""
        )
    return out


def causes_text(r: SiteReadiness) -> str:
    """The causes of lost points in one line: ``minor_alerts −3; maintenance_overdue −10``."""
    return "; ".join(f"{c.key.removeprefix('reason.')} −{c.points}" for c in r.causes)


class _LostRace(Conflict):
    """The work order's insert lost to another replica's, after it was audited."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def order_public(order: WorkOrder) -> WorkOrderPublic:
    return WorkOrderPublic.model_validate(order, from_attributes=True)


class MaintenanceService:
    """Made in the app's lifespan. Methods take ``now`` so a test can replay a month."""

    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        store: TimeSeriesStore,
        *,
        programme: Programme | None = None,
    ) -> None:
        self.settings = settings.maintenance
        self.db = db
        self.store = store
        # Loaded (and validated) at start: a bad region file stops the service's start.
        self.programme = programme or load_programme(self.settings.programme_file)
        # site → (when it was last searched for evidence, its devices per item): the fleet
        # view asks for every site at each refresh; telemetry is searched once per SCAN_MS.
        self._scanned: dict[str, tuple[int, dict[str, list[str]]]] = {}

    # -- status ---------------------------------------------------------------------------

    def anchor_ms(self) -> int:
        start = self.settings.start_date
        if start is None:
            return 0
        return (
            int(datetime.datetime.combine(start, datetime.time(), datetime.UTC).timestamp()) * 1000
        )

    async def _latest(self, site: str) -> list[LatestValue]:
        try:
            return [r for r in await self.store.latest(site) if r.kind not in NOT_READINGS]
        except (ShelterwatchError, OSError) as exc:
            log.warning("maintenance: no readings of site %s: %s", site, exc)
            return []

    async def _history(
        self, kind: str, site: str, device: str, point: str, since: int, until: int
    ) -> list[HistoryPoint]:
        try:
            return await self.store.history(kind, site, device, point, since, until)
        except (ShelterwatchError, OSError) as exc:
            log.warning("maintenance: no history of %s/%s/%s: %s", site, device, point, exc)
            return []

    async def _devices(
        self, site: str, now: int | None, latest: Sequence[LatestValue]
    ) -> tuple[int, dict[str, list[str]]]:
        """``now`` given (a report, a replayed month): always search at that moment. Not
        given: search at most once per SCAN_MS per site."""
        if now is not None:
            return now, await self.scan(site, now, latest)
        current = now_ms()
        cached = self._scanned.get(site)
        if cached is not None and current - cached[0] < SCAN_MS:
            return current, cached[1]
        devices = await self.scan(site, current, latest)
        self._scanned[site] = (current, devices)
        return current, devices

    async def scan(
        self, site: str, now: int, latest: Sequence[LatestValue]
    ) -> dict[str, list[str]]:
        """Look for telemetry evidence of each item with a detector and record what is new.
        Returns each such item's devices (the ones its evidence must cover)."""
        by_kind: dict[str, set[str]] = {}
        for row in latest:
            by_kind.setdefault(row.kind, set()).add(row.device)
        devices_by_item: dict[str, list[str]] = {}
        since = now - self.settings.evidence_lookback_days * DAY_MS
        for item in self.programme.items:
            if item.evidence is None:
                continue
            spec = DETECTORS[item.evidence.detector]
            devices = sorted(by_kind.get(spec.device_kind, ()))
            devices_by_item[item.key] = devices
            for device in devices:
                series = {
                    point: await self._history(spec.device_kind, site, device, point, since, now)
                    for point in spec.points
                }
                found = spec.detect(series, item.evidence)
                await records.add_telemetry(self.db, site, item.key, device, found, now)
        return devices_by_item

    async def status(
        self, site: str, *, now: int | None = None, since: int | None = None
    ) -> list[ItemStatus]:
        now, devices = await self._devices(site, now, await self._latest(site))
        done = await records.completions(self.db, site)
        return site_status(
            self.programme,
            done,
            devices_by_item=dict(devices),
            now_ms=now,
            anchor_ms=self.anchor_ms(),
            since_ms=since,
        )

    async def confirm(
        self, site: str, item: str, *, note: str, actor: str, done_ms: int | None = None
    ) -> ItemStatus:
        """A person confirms an item done at ``site``: audited, then recorded."""
        if self.programme.item(item) is None:
            raise NotFound(f"the programme {self.programme.name} has no item {item!r}")
        now = now_ms()
        done = now if done_ms is None else done_ms
        if done > now + 60_000:
            # Not a 422: the body is well-formed; it names a moment that has not come.
            raise Conflict(f"done_ms {done} is in the future: confirm work once it is done")
        await self._audit_first(
            actor, "maintenance.confirm", f"{site}/{item}", {"note": note, "done_ms": done}
        )
        await self._record_manual(site, item, done, actor, note, "")
        statuses = await self.status(site, now=max(now, done))
        return next(s for s in statuses if s.item.key == item)

    async def _record_manual(
        self, site: str, item: str, done: int, actor: str, note: str, detail: str
    ) -> None:
        async with self.db.session() as s:
            s.add(
                MaintenanceRecord(
                    site=site,
                    item=item,
                    source="manual",
                    device="",
                    done_ms=done,
                    actor=actor,
                    note=note,
                    detail=detail,
                    created_ms=now_ms(),
                )
            )
            try:
                await s.commit()
            except IntegrityError as exc:
                raise Conflict(f"{item} at {site} is already confirmed at {done}") from exc

    # -- readiness ------------------------------------------------------------------------

    async def readiness(
        self,
        site: str,
        *,
        now: int | None = None,
        flagged_sirens: int = 0,
        sirens: int = 0,
        district: str = "",
        latest: Sequence[LatestValue] | None = None,
        alerts: Sequence[AlertRecord] | None = None,
    ) -> SiteReadiness:
        readings = list(latest) if latest is not None else await self._latest(site)
        if alerts is None:
            alerts = await list_alerts(
                self.db, active_only=True, site=site, severity=None, limit=1000
            )
        now, devices = await self._devices(site, now, readings)
        statuses = site_status(
            self.programme,
            await records.completions(self.db, site),
            devices_by_item=dict(devices),
            now_ms=now,
            anchor_ms=self.anchor_ms(),
        )
        last, missed = await records.last_drill(self.db, site)
        facts = SiteFacts(
            site=site,
            latest=readings,
            alerts=[AlertFact(a.severity, a.kind, a.device) for a in alerts if a.site == site],
            flagged_sirens=flagged_sirens,
            sirens=sirens,
            district=district,
            overdue=[
                OverdueFact(s.item.key, s.item.weight, s.due_ms)
                for s in statuses
                if s.state == "overdue"
            ],
            drill=DrillFact(last, missed),
            now_ms=now,
            drill_max_age_days=self.settings.drill_max_age_days,
        )
        return assess(facts)

    # -- work orders ----------------------------------------------------------------------

    async def create_order(
        self,
        body: WorkOrderRequest | AlertWorkOrderRequest,
        *,
        actor: str,
        origin: str | None = None,
    ) -> WorkOrderPublic:
        now = now_ms()
        alert_id: int | None = None
        if isinstance(body, AlertWorkOrderRequest):
            alert = await self._alert(body.alert_id)
            alert_id, site = alert.id, alert.site
            title = f"{alert.rule} on {alert.device}: {alert.message}"[:300]
            found = self.programme.item_for_rule(alert.rule)
            item = found.key if found else None
            origin = origin or f"alert:{alert.id}"
        else:
            site, title, item = body.site, body.title, body.item
            if item is not None and self.programme.item(item) is None:
                raise NotFound(f"the programme {self.programme.name} has no item {item!r}")
        due = (
            body.due_ms if body.due_ms is not None else now + self.settings.work_order_days * DAY_MS
        )
        if origin is not None and await self._by_origin(origin) is not None:
            raise Conflict(f"a work order for {origin} exists already")
        order = WorkOrder(
            id=f"wo-{secrets.token_hex(6)}",
            site=site,
            item=item,
            alert_id=alert_id,
            origin=origin,
            title=title,
            detail=body.detail,
            assignee=body.assignee,
            due_ms=due,
            state="open",
            created_by=actor,
            created_ms=now,
            updated_ms=now,
            closed_by=None,
            closed_ms=None,
            closing_note="",
        )
        await self._audit_first(
            actor,
            "work_orders.create",
            f"{order.id} {site}",
            {"title": title, "item": item, "alert_id": alert_id, "assignee": body.assignee},
        )
        async with self.db.session() as s:
            s.add(order)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise _LostRace(f"a work order for {origin} exists already") from exc
        return order_public(order)

    async def _alert(self, alert_id: int) -> AlertRecord:
        async with self.db.session() as s:
            alert = await s.get(AlertRecord, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        return alert

    async def _by_origin(self, origin: str) -> WorkOrder | None:
        async with self.db.session() as s:
            found: WorkOrder | None = await s.scalar(
                select(WorkOrder).where(WorkOrder.origin == origin)
            )
            return found

    async def get_order(self, order_id: str) -> WorkOrderPublic:
        async with self.db.session() as s:
            order = await s.get(WorkOrder, order_id)
        if order is None:
            raise NotFound(f"no work order {order_id}")
        return order_public(order)

    async def orders(
        self,
        *,
        sites: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[WorkOrderPublic]:
        found = await records.list_orders(self.db, sites=sites, states=states, limit=limit)
        return [order_public(o) for o in found]

    async def start_order(
        self, order_id: str, *, actor: str, assignee: str | None
    ) -> WorkOrderPublic:
        return await self._move(
            order_id, "in_progress", actor=actor, note="", assignee=assignee, allowed=("open",)
        )

    async def close_order(self, order_id: str, *, actor: str, note: str) -> WorkOrderPublic:
        """Done: audited first. An order about a programme item records the item done."""
        order = await self._move(order_id, "done", actor=actor, note=note, allowed=OPEN_STATES)
        if order.item is not None:
            await self._record_manual(
                order.site,
                order.item,
                order.closed_ms or now_ms(),
                actor,
                note,
                f"work order {order.id}",
            )
        return order

    async def cancel_order(self, order_id: str, *, actor: str, note: str) -> WorkOrderPublic:
        return await self._move(order_id, "cancelled", actor=actor, note=note, allowed=OPEN_STATES)

    async def _move(
        self,
        order_id: str,
        state: str,
        *,
        actor: str,
        note: str,
        allowed: Sequence[str],
        assignee: str | None = None,
    ) -> WorkOrderPublic:
        current = await self.get_order(order_id)
        if current.state not in allowed:
            raise Conflict(f"work order {order_id} is {current.state}")
        action = {"in_progress": "start", "done": "close", "cancelled": "cancel"}[state]
        await self._audit_first(
            actor,
            f"work_orders.{action}",
            f"{order_id} {current.site}",
            {"note": note, "assignee": assignee},
        )
        now = now_ms()
        async with self.db.session() as s:
            await self.db.write_lock(s, WorkOrder)
            order = await s.get(WorkOrder, order_id)
            if order is None:
                raise NotFound(f"no work order {order_id}")
            if order.state not in allowed:
                raise Conflict(f"work order {order_id} is {order.state}")
            order.state = state
            order.updated_ms = now
            if assignee is not None:
                order.assignee = assignee
            if state in ("done", "cancelled"):
                order.closed_by, order.closed_ms, order.closing_note = actor, now, note
            await s.commit()
            return order_public(order)

    async def generate(
        self, *, actor: str, sites: Sequence[str] | None = None
    ) -> list[WorkOrderPublic]:
        """Work orders for open degradation alerts and for items due or overdue, each made
        once (the origin is unique). Returns the new ones."""
        now = now_ms()
        made: list[WorkOrderPublic | None] = []
        alerts = await list_alerts(self.db, active_only=True, site=None, severity=None, limit=1000)
        for alert in alerts:
            if alert.kind not in DEGRADATION_KINDS or (
                sites is not None and alert.site not in sites
            ):
                continue
            if await self._by_origin(f"alert:{alert.id}") is not None:
                continue
            made.append(
                await self._try_create(AlertWorkOrderRequest(alert_id=alert.id), actor, None)
            )
        try:
            all_sites = list(sites) if sites is not None else await self.store.sites()
        except (ShelterwatchError, OSError) as exc:
            log.warning("maintenance: cannot list sites: %s", exc)
            all_sites = []
        for site in all_sites:
            # Without ``now``: the search for evidence is shared with the readiness that a
            # sweep computes next (once per SCAN_MS per site).
            for st in await self.status(site):
                if st.state not in ("due", "overdue"):
                    continue
                origin = f"item:{site}:{st.item.key}:{st.due_ms}"
                if await self._by_origin(origin) is not None:
                    continue
                body = WorkOrderRequest(
                    site=site,
                    item=st.item.key,
                    title=st.item.title_en,
                    detail=st.item.title_zh,
                    due_ms=max(st.due_ms, now),
                )
                made.append(await self._try_create(body, actor, origin))
        return [m for m in made if m is not None]

    async def _try_create(
        self, body: WorkOrderRequest | AlertWorkOrderRequest, actor: str, origin: str | None
    ) -> WorkOrderPublic | None:
        try:
            return await self.create_order(body, actor=actor, origin=origin)
        except _LostRace as exc:
            # Another replica made it in between. Its creation was audited first, and so was
            # this one's attempt: the trail says that this one was not made after all.
            log.info("maintenance: %s", exc)
            await self._audit_first(
                actor,
                "work_orders.create_dropped",
                origin
                or (f"alert:{body.alert_id}" if isinstance(body, AlertWorkOrderRequest) else ""),
                {"reason": str(exc)},
            )
            return None
        except Conflict:  # made in between, seen before this one was announced
            return None

    # -- the sweep ------------------------------------------------------------------------

    async def sweep(
        self,
        *,
        actor: str,
        sirens: SirenService | None = None,
        slot_ms: int = 0,
    ) -> SweepResult:
        """What the periodic job (job.py) and ``POST /maintenance/sweep`` run: the missing
        work orders, telemetry evidence, and every site's readiness recorded in the store.

        ``slot_ms`` > 0 puts the readiness points on the start of their slot, so replicas
        sweeping in the same slot write the same points (the store keeps one per series and
        time) instead of one each."""
        orders = await self.generate(actor=actor)
        facts = await siren_facts(sirens) if sirens is not None else {}
        try:
            sites = sorted(set(await self.store.sites()) | set(facts))
        except (ShelterwatchError, OSError) as exc:
            log.warning("maintenance: cannot list sites: %s", exc)
            sites = sorted(facts)
        found: list[SiteReadiness] = []
        for site in sites:
            f = facts.get(site, SirenFacts())
            found.append(
                await self.readiness(
                    site, flagged_sirens=f.flagged, sirens=f.sirens, district=f.district
                )
            )
        now = now_ms()
        return SweepResult(
            orders,
            found,
            await self.record_readiness(found, now - now % slot_ms if slot_ms else now),
        )

    async def record_readiness(self, found: Sequence[SiteReadiness], ts_ms: int) -> bool:
        """Write each site's score, state and causes to the store; False if it refused."""
        samples = [
            Sample(
                READINESS_MEASUREMENT,
                r.site,
                READINESS_GATEWAY,
                READINESS_DEVICE,
                ts_ms,
                {"score": r.score, "state": r.state.key, "causes": causes_text(r)},
                r.district,
            )
            for r in found
        ]
        if not samples:
            return True
        try:
            await self.store.write(samples)
        except (ShelterwatchError, OSError) as exc:
            log.warning("maintenance: the readiness history was not recorded: %s", exc)
            return False
        return True

    async def readiness_history(
        self, site: str, since_ms: int, until_ms: int
    ) -> list[ReadinessPoint]:
        """The site's recorded readiness in the period, as its changes: the first point, then
        each point whose score, state or causes differ from the one before. A period longer
        than ``_RAW_HISTORY_MS`` is read in buckets (the mean score, the last state)."""
        span = until_ms - since_ms
        bucket = None if span <= _RAW_HISTORY_MS else max(3_600_000, span // _HISTORY_POINTS)
        series: dict[str, list[HistoryPoint]] = {}
        for name in ("score", "state", "causes"):
            try:
                series[name] = await self.store.history(
                    READINESS_MEASUREMENT,
                    site,
                    READINESS_DEVICE,
                    name,
                    since_ms,
                    until_ms,
                    bucket_ms=bucket,
                )
            except (ShelterwatchError, OSError) as exc:
                log.warning("maintenance: no readiness history of %s: %s", site, exc)
                series[name] = []
        states = {p.ts_ms: str(p.value) for p in series["state"]}
        causes = {p.ts_ms: str(p.value) for p in series["causes"]}
        out: list[ReadinessPoint] = []
        for p in series["score"]:
            if isinstance(p.value, bool) or not isinstance(p.value, int | float):
                continue
            point = ReadinessPoint(
                p.ts_ms, round(p.value), states.get(p.ts_ms, ""), causes.get(p.ts_ms, "")
            )
            last = out[-1] if out else None
            if last is None or (last.score, last.state, last.causes) != (
                point.score,
                point.state,
                point.causes,
            ):
                out.append(point)
        return out

    # -- reports --------------------------------------------------------------------------

    async def district_sites(self, district: str) -> list[str]:
        async with self.db.session() as s:
            found = await s.scalars(select(SirenPost.site).where(SirenPost.district == district))
            return sorted(set(found))

    async def _audit_first(
        self, actor: str, action: str, target: str, params: dict[str, object]
    ) -> None:
        try:
            await append_audit(self.db, actor=actor, action=action, target=target, params=params)
        except Exception as exc:
            raise Unavailable(
                f"the audit trail did not take {action}, so nothing was done: {exc!r}"
            ) from exc
