"""A site's readiness: a state (the worst finding) and a score out of 100. Pure logic, no IO.

The score is 100 points minus a stated number for each cause. Pure logic.

Every point lost is one ``Cause`` with its catalogue key (the console's ``reason.*`` words),
the points it cost, how many findings it covers and what they are. The table ``RULES`` is
the whole policy: points per finding and a cap per cause, so one noisy cause (twenty minor
alerts) cannot hide the others, and the sum of the caps may exceed 100 (the score stops at 0).

| cause | per finding | cap |
|---|---|---|
| no readings at all | 100 | 100 |
| open critical alert | 30 | 60 |
| open major alert | 10 | 30 |
| device not reporting (offline / stale alert) | 10 | 30 |
| siren post flagged (last test failed, or disabled) | 10 | 20 |
| open minor or warning alert | 3 | 9 |
| maintenance item overdue | the item's ``weight`` | 30 |
| no completed conversion drill on record | 10 | 10 |
| last completed drill older than ``drill_max_age_days`` | 10 | 10 |
| last completed drill missed its deadline | 5 | 5 |

The state is the worse of the score's band (≥ 85 ready, ≥ 60 attention, ≥ 30 degraded,
else not ready) and the worst finding (control/console/readiness.py), so an open critical
alert is ``not_ready`` whatever the score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from shelterwatch.store import LatestValue

__all__ = [
    "NOT_READINGS",
    "READINESS",
    "RULES",
    "AlertFact",
    "Cause",
    "DrillFact",
    "OverdueFact",
    "Readiness",
    "Rule",
    "SiteFacts",
    "SiteReadiness",
    "assess",
    "band",
    "causes_of",
    "score",
]

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Rule:
    points: int
    cap: int


RULES: dict[str, Rule] = {
    "reason.no_data": Rule(100, 100),
    "reason.critical_alerts": Rule(30, 60),
    "reason.major_alerts": Rule(10, 30),
    "reason.not_reporting": Rule(10, 30),
    "reason.sirens_flagged": Rule(10, 20),
    "reason.minor_alerts": Rule(3, 9),
    "reason.maintenance_overdue": Rule(0, 30),  # points: each item's weight
    "reason.drill_never": Rule(10, 10),
    "reason.drill_stale": Rule(10, 10),
    "reason.drill_missed": Rule(5, 5),
}


@dataclass(frozen=True, slots=True)
class Cause:
    key: str
    points: int
    count: int = 1
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OverdueFact:
    item: str
    weight: int
    due_ms: int


@dataclass(frozen=True, slots=True)
class DrillFact:
    """The site's last completed conversion drill (None: never), and whether it missed."""

    last_ms: int | None
    missed: bool = False


def _cause(key: str, count: int, detail: str = "", points: int | None = None) -> Cause | None:
    if count <= 0:
        return None
    rule = RULES[key]
    lost = min(rule.cap, rule.points * count if points is None else points)
    return Cause(key, lost, count, detail)


def causes_of(
    *,
    devices: int,
    severities: dict[str, int],
    not_reporting: int,
    flagged_sirens: int,
    overdue: Sequence[OverdueFact] = (),
    drill: DrillFact | None = None,
    now_ms: int = 0,
    drill_max_age_days: int = 365,
) -> tuple[Cause, ...]:
    """Every cause of lost points, in the order of ``RULES``. ``drill`` None: not assessed."""
    found: list[Cause | None] = [
        _cause("reason.no_data", 1 if devices == 0 else 0),
        _cause("reason.critical_alerts", severities.get("critical", 0)),
        _cause("reason.major_alerts", severities.get("major", 0)),
        _cause("reason.not_reporting", not_reporting),
        _cause("reason.sirens_flagged", flagged_sirens),
        _cause("reason.minor_alerts", severities.get("minor", 0) + severities.get("warning", 0)),
        _cause(
            "reason.maintenance_overdue",
            len(overdue),
            ", ".join(o.item for o in overdue),
            points=sum(o.weight for o in overdue),
        ),
    ]
    if drill is not None:
        if drill.last_ms is None:
            found.append(_cause("reason.drill_never", 1))
        else:
            age_days = (now_ms - drill.last_ms) // DAY_MS
            stale = age_days > drill_max_age_days
            found.append(_cause("reason.drill_stale", 1 if stale else 0, f"{age_days} d"))
            found.append(_cause("reason.drill_missed", 1 if drill.missed else 0))
    return tuple(c for c in found if c is not None and c.points > 0)


def score(causes: Sequence[Cause]) -> int:
    return max(0, 100 - sum(c.points for c in causes))


def band(points: int) -> int:
    """The score's band as control.console.readiness.Readiness values (0 ready … 3 not ready)."""
    if points >= 85:
        return 0
    if points >= 60:
        return 1
    if points >= 30:
        return 2
    return 3


# Alert kinds that mean a device or gateway stopped reporting (the engine's stale and
# offline rules), counted apart from the equipment's own alerts.
_NOT_REPORTING = frozenset({"offline", "stale"})
# Causes from maintenance and drills: each one is a finding of its own (attention).
_MAINTENANCE = frozenset(
    {
        "reason.maintenance_overdue",
        "reason.drill_never",
        "reason.drill_stale",
        "reason.drill_missed",
    }
)


class Readiness(IntEnum):
    """Ordered: a higher value is worse."""

    READY = 0
    ATTENTION = 1
    DEGRADED = 2
    NOT_READY = 3
    NO_DATA = 4

    @property
    def key(self) -> str:
        return self.name.lower()


READINESS = tuple(r.key for r in Readiness)


@dataclass(frozen=True, slots=True)
class AlertFact:
    severity: str
    kind: str
    device: str


@dataclass(frozen=True, slots=True)
class SiteFacts:
    site: str
    latest: Sequence[LatestValue] = ()
    alerts: Sequence[AlertFact] = ()
    # Siren posts at the site that are flagged (last test failed, or disabled).
    flagged_sirens: int = 0
    sirens: int = 0
    district: str = ""
    # Maintenance items past their due date, and the last drill (None: not assessed).
    overdue: Sequence[OverdueFact] = ()
    drill: DrillFact | None = None
    now_ms: int = 0
    drill_max_age_days: int = 365


@dataclass(frozen=True, slots=True)
class SiteReadiness:
    site: str
    district: str
    state: Readiness
    devices: int
    not_reporting: int
    sirens: int
    flagged_sirens: int
    last_reading_ms: int | None
    alerts_by_severity: dict[str, int] = field(default_factory=dict)
    # Catalogue keys of the findings that set the state, worst first.
    reasons: tuple[str, ...] = ()
    # Out of 100; each cause says how many points it cost.
    score: int = 100
    causes: tuple[Cause, ...] = ()
    overdue: int = 0


# Measurements in the store that are not readings of a device: the alert engine's events and
# the readiness history the maintenance sweep writes.
NOT_READINGS = frozenset({"alert", "readiness"})


def _devices(latest: Iterable[LatestValue]) -> tuple[int, int | None]:
    newest: dict[str, int] = {}
    for row in latest:
        if row.kind in NOT_READINGS:
            continue
        newest[row.device] = max(newest.get(row.device, 0), row.ts_ms)
    return len(newest), max(newest.values(), default=None)


def assess(facts: SiteFacts) -> SiteReadiness:
    devices, last = _devices(facts.latest)
    severities = Counter(a.severity for a in facts.alerts)
    not_reporting = len({a.device for a in facts.alerts if a.kind in _NOT_REPORTING})
    findings: list[tuple[Readiness, str]] = []
    if devices == 0:
        findings.append((Readiness.NO_DATA, "reason.no_data"))
    if severities["critical"]:
        findings.append((Readiness.NOT_READY, "reason.critical_alerts"))
    if severities["major"]:
        findings.append((Readiness.DEGRADED, "reason.major_alerts"))
    if not_reporting:
        findings.append((Readiness.DEGRADED, "reason.not_reporting"))
    if facts.flagged_sirens:
        findings.append((Readiness.DEGRADED, "reason.sirens_flagged"))
    if severities["minor"] or severities["warning"]:
        findings.append((Readiness.ATTENTION, "reason.minor_alerts"))
    causes = causes_of(
        devices=devices,
        severities=dict(severities),
        not_reporting=not_reporting,
        flagged_sirens=facts.flagged_sirens,
        overdue=facts.overdue,
        drill=facts.drill,
        now_ms=facts.now_ms,
        drill_max_age_days=facts.drill_max_age_days,
    )
    for cause in causes:
        if cause.key in _MAINTENANCE:
            findings.append((Readiness.ATTENTION, cause.key))
    findings.sort(key=lambda f: f[0], reverse=True)
    points = score(causes)
    state = max(findings[0][0] if findings else Readiness.READY, Readiness(band(points)))
    return SiteReadiness(
        site=facts.site,
        district=facts.district,
        state=state,
        devices=devices,
        not_reporting=not_reporting,
        sirens=facts.sirens,
        flagged_sirens=facts.flagged_sirens,
        last_reading_ms=last,
        alerts_by_severity=dict(severities),
        reasons=tuple(key for _, key in findings),
        score=points,
        causes=causes,
        overdue=len(facts.overdue),
    )
