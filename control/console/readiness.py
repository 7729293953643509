"""A site's readiness as the fleet view shows it, derived only from what the platform knows.
Pure logic, no IO.

The worst finding wins:

- ``no_data``: the store holds no readings of the site (a siren post names it, nothing
  reported yet);
- ``not_ready``: an open critical alert;
- ``degraded``: an open major alert, a device the alert engine declares offline or silent,
  or a siren post whose last test failed (or that is disabled);
- ``attention``: open minor or warning alerts only;
- ``ready``: none of these.

Readiness says nothing the alert engine and the siren tests have not said: it is their
verdicts summed up per site, so a rule changed there changes it here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from shelterwatch.store import LatestValue

__all__ = ["READINESS", "AlertFact", "Readiness", "SiteFacts", "SiteReadiness", "assess"]

# Alert kinds that mean a device or gateway stopped reporting (the engine's stale and
# offline rules), counted apart from the equipment's own alerts.
_NOT_REPORTING = frozenset({"offline", "stale"})


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


def _devices(latest: Iterable[LatestValue]) -> tuple[int, int | None]:
    newest: dict[str, int] = {}
    for row in latest:
        if row.kind == "alert":
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
    findings.sort(key=lambda f: f[0], reverse=True)
    state = findings[0][0] if findings else Readiness.READY
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
    )
