"""A siren's health as every listing shows it: its last test, and whether it is flagged.

Two sources: this service's silent tests (kept on the post), and the controller's own
self-test as the collector stores it (points ``last_self_test_result``: none, pass or fail,
and ``last_self_test``, epoch seconds). The newer of the two is the last test. A siren is
flagged when its last test did not pass, or when it is disabled: flagged sirens are still
targeted, but a person should look before relying on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from control.db import SirenPost
from control.sirens.models import LastTest, SirenPublic
from control.sirens.outcomes import TargetState
from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import TimeSeriesStore

__all__ = ["Health", "health_of", "read_telemetry", "siren_public"]

log = logging.getLogger(__name__)

_PASSED = {TargetState.TEST_PASSED.value, "self_test_pass"}


@dataclass(frozen=True, slots=True)
class Health:
    last_test: LastTest | None
    flagged: bool
    reason: str


def _telemetry_test(values: dict[str, tuple[object, int]]) -> LastTest | None:
    result = values.get("last_self_test_result")
    if result is None or result[0] not in ("pass", "fail"):
        return None
    when = values.get("last_self_test")
    ts = result[1]
    if when is not None and isinstance(when[0], int | float) and when[0] > 0:
        ts = int(when[0] * 1000)
    outcome = f"self_test_{result[0]}"
    return LastTest(
        outcome=outcome,
        detail=f"the controller's own self-test: {result[0]}",
        ts=ts,
        source="telemetry",
    )


def health_of(post: SirenPost, telemetry: dict[str, tuple[object, int]] | None) -> Health:
    tests = []
    if post.last_test_outcome is not None and post.last_test_ms is not None:
        tests.append(
            LastTest(
                outcome=post.last_test_outcome,
                detail=post.last_test_detail,
                ts=post.last_test_ms,
                source="silent_test",
                activation=post.last_test_activation,
            )
        )
    if telemetry:
        self_test = _telemetry_test(telemetry)
        if self_test is not None:
            tests.append(self_test)
    last = max(tests, key=lambda t: t.ts) if tests else None
    reasons = []
    if not post.enabled:
        reasons.append("disabled")
    if last is not None and last.outcome not in _PASSED:
        reasons.append(f"last test {last.outcome}: {last.detail}".rstrip(": "))
    return Health(last, bool(reasons), "; ".join(reasons))


async def read_telemetry(
    store: TimeSeriesStore | None, posts: Iterable[SirenPost]
) -> dict[tuple[str, str], dict[str, tuple[object, int]]]:
    """(site, device) → point → (value, ts) for the posts' sites. A store that cannot answer
    leaves telemetry out (logged), rather than failing the listing."""
    if store is None:
        return {}
    out: dict[tuple[str, str], dict[str, tuple[object, int]]] = {}
    for site in sorted({p.site for p in posts}):
        try:
            rows = await store.latest(site)
        except (ShelterwatchError, OSError) as exc:
            log.warning("sirens: no telemetry for site %s (listing without it): %s", site, exc)
            continue
        for row in rows:
            if row.point in ("last_self_test_result", "last_self_test"):
                out.setdefault((site, row.device), {})[row.point] = (row.value, row.ts_ms)
    return out


def siren_public(post: SirenPost, health: Health) -> SirenPublic:
    return SirenPublic(
        id=post.id,
        name=post.name,
        site=post.site,
        gateway=post.gateway,
        device=post.device,
        district=post.district,
        lat=post.lat,
        lon=post.lon,
        radius_m=post.radius_m,
        profile=post.profile,  # type: ignore[arg-type]
        enabled=post.enabled,
        last_test=health.last_test,
        flagged=health.flagged,
        flag_reason=health.reason,
        created=post.created_ms,
        updated=post.updated_ms,
    )
