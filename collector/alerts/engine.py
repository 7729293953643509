"""The alert engine: samples, device and gateway states in, alert events out. Pure logic.

No IO and no clock of its own: every call carries its time (a sample's ``ts_ms``, a status's
``ts_ms``, or the ``now_ms`` given to ``tick``), so the same inputs give the same events, which
is what makes a replay after a crash harmless. Publishing, storing and persisting the state are
the caller's job (``collector/alerts/service.py``).

Speed: rules are indexed by (device kind, point), so a sample costs one dict lookup per point
and touches only the rules that watch one of its points, or whose ``when:`` conditions read one.
Nothing scans all rules per sample; ``tick`` (about once a second) handles what time alone
decides: duration timers, stale devices and the repeat of critical alerts.

Lifecycle per (rule, site, device): idle → pending (violating, ``for_s`` running) → active
(raised, published) → clearing (``clear_for_s`` running) → idle (cleared). One active alert per
key, so a condition that persists is one alert, never a flood.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.alerts.rules import (
    Condition,
    FlatlineRule,
    OfflineRule,
    Posture,
    PostureRule,
    Rule,
    RulePack,
    StaleRule,
    ThresholdRule,
    TrendRule,
)
from collector.ingest import GatewayStatus
from shelterwatch.contract import Alert
from shelterwatch.store import DeviceStatus, FieldValue, Sample

__all__ = ["AlertEngine", "AlertEvent", "EngineStats", "GatewayStatus", "theil_sen"]

_MISSING: Any = object()
RuleKey = tuple[str, str, str]  # (rule, site, device)
DevKey = tuple[str, str]  # (site, device)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert message to publish on ``alert_topic(site, rule, device)`` and to store.

    ``repeat`` marks the re-publication of an active critical alert (same ``raised_ts``).
    """

    site: str
    rule: str
    device: str
    gateway: str
    alert: Alert
    repeat: bool = False


@dataclass(slots=True)
class EngineStats:
    samples: int = 0
    out_of_order: int = 0  # samples older than the device's newest: not evaluated
    raised: int = 0
    cleared: int = 0
    repeats: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept of the Theil–Sen line: the median of all pairwise slopes.

    Robust: up to about 29 % of the points can be outliers without moving the line, where a
    least-squares fit follows a single spike. O(n²), which is why trend windows are bounded.
    """
    n = len(points)
    slopes = []
    for i in range(n):
        xi, yi = points[i]
        for j in range(i + 1, n):
            xj, yj = points[j]
            if xj != xi:
                slopes.append((yj - yi) / (xj - xi))
    if not slopes:
        raise ValueError("Theil–Sen needs two points with different x")
    slope = statistics.median(slopes)
    intercept = statistics.median([y - slope * x for x, y in points])
    return slope, intercept


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _test(op: str, want: FieldValue) -> Callable[[FieldValue], bool]:
    """A predicate for one condition. Types that cannot be compared never match."""
    fn = _OPS[op]
    if op in ("==", "!="):
        # bool is an int in Python: True == 1 must not make a bool condition match a number.
        want_bool = isinstance(want, bool)

        def eq(v: FieldValue) -> bool:
            same = isinstance(v, bool) == want_bool and v == want
            return same if op == "==" else not same

        return eq
    if not _numeric(want):
        return lambda v: False
    return lambda v: _numeric(v) and fn(v, want)


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    name: str
    kind: str
    severity: str
    device_kind: str | None
    point: str | None
    for_ms: int
    clear_for_ms: int
    conds: tuple[tuple[Condition, Callable[[FieldValue], bool]], ...]
    postures: frozenset[str] | None

    @property
    def gated(self) -> bool:
        return bool(self.conds) or self.postures is not None


@dataclass(slots=True)
class _Entry:
    """What a (kind, point) means to the engine: rules on it, and whether conditions read it."""

    targets: list[_Compiled] = field(default_factory=list)
    dependents: list[_Compiled] = field(default_factory=list)
    cond: bool = False
    stale: bool = False


@dataclass(slots=True)
class _Active:
    raised_ts: int
    severity: str
    message: str
    value: FieldValue | None
    predicted_ts: int | None
    notified_ms: int


@dataclass(slots=True)
class _State:
    gateway: str = ""
    pending_since: int | None = None
    clear_since: int | None = None
    active: _Active | None = None
    last_value: FieldValue | None = None
    window: list[tuple[int, float]] | None = None  # trend
    ref: FieldValue | None = None  # flatline: the value the window compares against
    ref_ts: int | None = None
    ref_saved: bool = False


@dataclass(slots=True)
class _Device:
    site: str
    device: str
    kind: str
    gateway: str
    last_ts: int = -1  # newest sample ts: older samples are not evaluated
    last_seen: int = 0  # when data last arrived (stale)
    point_seen: dict[str, int] = field(default_factory=dict)
    online: bool = True
    status_ts: int = -1
    values: dict[str, FieldValue] = field(default_factory=dict)  # points some rule reads
    cond: dict[str, FieldValue] = field(default_factory=dict)  # points conditions read
    stale_active: int = 0


@dataclass(slots=True)
class _Gateway:
    site: str
    online: bool
    ts_ms: int


class AlertEngine:
    """Evaluate a rule pack incrementally. Call ``events()`` to take what the calls produced.

    ``postures`` maps a site to its declared posture (default ``peacetime``); ``site_params``
    overrides rule parameters per site (``{"shelter-01": {"water_reserve_pct": 40}}``);
    ``repeat_critical_s`` re-publishes active critical alerts that often (None: never).
    ``state`` is what ``take_changes`` returned earlier (the persisted engine state).
    """

    def __init__(
        self,
        pack: RulePack,
        *,
        postures: Mapping[str, Posture] | None = None,
        default_posture: Posture = "peacetime",
        site_params: Mapping[str, Mapping[str, float]] | None = None,
        repeat_critical_s: float | None = None,
        state: Mapping[str, str] | None = None,
        now_ms: int = 0,
    ) -> None:
        self.stats = EngineStats()
        self._postures: dict[str, str] = dict(postures or {})
        self._default_posture = default_posture
        self._site_params = {s: dict(p) for s, p in (site_params or {}).items()}
        self._repeat_ms = None if repeat_critical_s is None else int(repeat_critical_s * 1000)
        self._rules: dict[str, _Compiled] = {}
        self._index: dict[str, dict[str, _Entry]] = {}
        self._stale: list[_Compiled] = []
        self._offline_dev: list[_Compiled] = []
        self._offline_gw: list[_Compiled] = []
        self._limits: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self._states: dict[RuleKey, _State] = {}
        self._devices: dict[DevKey, _Device] = {}
        self._by_site_kind: dict[tuple[str, str], list[_Device]] = {}
        self._site_cond: dict[str, dict[tuple[str, str], dict[str, FieldValue]]] = {}
        self._gateways: dict[str, _Gateway] = {}
        self._timers: dict[RuleKey, int] = {}
        self._critical: set[RuleKey] = set()
        self._events: list[AlertEvent] = []
        self._dirty_rules: set[RuleKey] = set()
        self._dirty_devices: set[DevKey] = set()
        self._dirty_gateways: set[str] = set()
        for rule in pack.rules:
            self._compile(rule)
        if state:
            self._restore(state, now_ms)

    # -- set-up --------------------------------------------------------------------------------

    def _entry(self, kind: str, point: str) -> _Entry:
        points = self._index.setdefault(kind, {})
        entry = points.get(point)
        if entry is None:
            entry = points[point] = _Entry()
        return entry

    def _compile(self, rule: Rule) -> None:
        for_s = getattr(rule, "for_s", 0.0)
        clear_for_s = getattr(rule, "clear_for_s", 0.0)
        when: list[Condition] = getattr(rule, "when", [])
        c = _Compiled(
            rule=rule,
            name=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            device_kind=rule.device_kind,
            point=getattr(rule, "point", None),
            for_ms=int(for_s * 1000),
            clear_for_ms=int(clear_for_s * 1000),
            conds=tuple((cond, _test(cond.op, cond.value)) for cond in when),
            postures=frozenset(rule.postures) if rule.postures is not None else None,
        )
        self._rules[rule.name] = c
        if isinstance(rule, StaleRule):
            self._stale.append(c)
            if rule.point is not None and rule.device_kind is not None:
                self._entry(rule.device_kind, rule.point).stale = True
            return
        if isinstance(rule, OfflineRule):
            (self._offline_gw if rule.target == "gateway" else self._offline_dev).append(c)
            return
        assert rule.device_kind is not None and c.point is not None  # checked at load
        self._entry(rule.device_kind, c.point).targets.append(c)
        for cond, _ in c.conds:
            entry = self._entry(cond.device_kind, cond.point)
            entry.cond = True
            if c not in entry.dependents:
                entry.dependents.append(c)

    def _param_limit(self, c: _Compiled, site: str, limit: float | str | None) -> float | None:
        if limit is None or isinstance(limit, float | int):
            return limit
        site_params = self._site_params.get(site, {})
        return float(site_params.get(limit, c.rule.params[limit]))

    def _site_limits(self, c: _Compiled, site: str) -> tuple[float | None, float | None]:
        lims = self._limits.get((c.name, site))
        if lims is None:
            rule = c.rule
            if isinstance(rule, TrendRule):
                limit = self._param_limit(c, site, rule.limit)
                assert limit is not None
                lims = (limit * rule.limit_factor, None)
            elif isinstance(rule, ThresholdRule | PostureRule):
                lims = (
                    self._param_limit(c, site, rule.below),
                    self._param_limit(c, site, rule.above),
                )
            else:
                lims = (None, None)
            self._limits[(c.name, site)] = lims
        return lims

    def posture(self, site: str) -> str:
        return self._postures.get(site, self._default_posture)

    # -- inputs --------------------------------------------------------------------------------

    def _device(self, site: str, device: str, kind: str, gateway: str, seen: int) -> _Device:
        key = (site, device)
        d = self._devices.get(key)
        if d is None:
            d = self._devices[key] = _Device(site, device, kind, gateway, last_seen=seen)
            self._by_site_kind.setdefault((site, kind), []).append(d)
            self._dirty_devices.add(key)
        elif (d.kind != kind and kind != "unknown") or (d.gateway != gateway and gateway):
            if d.kind != kind and kind != "unknown":
                self._by_site_kind[(site, d.kind)].remove(d)
                self._by_site_kind.setdefault((site, kind), []).append(d)
                d.kind = kind
            d.gateway = gateway or d.gateway
            self._dirty_devices.add(key)
        return d

    def on_sample(self, sample: Sample, received_ms: int | None = None) -> None:
        """Evaluate the rules that watch the sample's points (or read them in conditions)."""
        self.stats.samples += 1
        site, dev, kind, ts = sample.site, sample.device, sample.measurement, sample.ts_ms
        seen = ts if received_ms is None else received_ms
        d = self._devices.get((site, dev))
        if d is None or d.kind != kind or d.gateway != sample.gateway:
            d = self._device(site, dev, kind, sample.gateway, seen)
        if ts < d.last_ts:
            # A replayed (historical) or reordered sample: the present is already known.
            self.stats.out_of_order += 1
            return
        d.last_ts = ts
        d.last_seen = seen
        if d.stale_active:
            self._clear_stale(d, sample.fields, seen)
        points = self._index.get(kind)
        if points is None:
            return
        targets: list[tuple[list[_Compiled], FieldValue]] | None = None
        dependents: list[_Compiled] | None = None
        for name, value in sample.fields.items():
            entry = points.get(name)
            if entry is None:
                continue
            d.values[name] = value
            if entry.stale:
                d.point_seen[name] = seen
            if entry.cond:
                old = d.cond.get(name, _MISSING)
                if old is _MISSING or old != value or type(old) is not type(value):
                    d.cond[name] = value
                    self._dirty_devices.add((site, dev))
                    self._site_cond.setdefault(site, {}).setdefault((kind, name), {})[dev] = value
                    if entry.dependents:
                        dependents = (dependents or []) + entry.dependents
            if entry.targets:
                if targets is None:
                    targets = []
                targets.append((entry.targets, value))
        if targets is not None:
            for rules, value in targets:
                for c in rules:
                    self._eval(c, d, value, ts, False)
        if dependents is not None:
            self._reevaluate(dependents, site, ts)

    def _reevaluate(self, rules: Iterable[_Compiled], site: str, ts: int) -> None:
        # A condition changed: the rules that read it look again at their devices' latest value.
        done: set[str] = set()
        for c in rules:
            if c.name in done or c.device_kind is None or c.point is None:
                continue
            done.add(c.name)
            for other in self._by_site_kind.get((site, c.device_kind), ()):
                value = other.values.get(c.point, _MISSING)
                if value is not _MISSING:
                    self._eval(c, other, value, max(ts, other.last_ts), True)

    def on_status(self, status: DeviceStatus, received_ms: int | None = None) -> None:
        """A device's retained state: online or offline (offline rules)."""
        seen = status.ts_ms if received_ms is None else received_ms
        d = self._device(status.site, status.device, status.kind, status.gateway, seen)
        if status.ts_ms < d.status_ts:
            return
        if d.online != status.online or d.status_ts < 0:
            self._dirty_devices.add((d.site, d.device))
        if status.online and d.online is False:
            # Back from an outage: its silence is the offline rule's business, and the
            # first data is on its way (the gateway publishes the state first). Without
            # this a tick between the two raised a stale alert back-dated into the outage.
            d.last_seen = max(d.last_seen, seen)
        d.status_ts = status.ts_ms
        d.online = status.online
        verdict = 0 if status.online else 1
        for c in self._offline_dev:
            if c.device_kind is None or c.device_kind == d.kind:
                self._step(c, d.site, d.device, d.gateway, verdict, None, status.ts_ms)

    def on_gateway(self, status: GatewayStatus) -> None:
        """A gateway's birth or death; the alert's device segment is the gateway id."""
        g = self._gateways.get(status.gateway)
        if g is not None and status.ts_ms < g.ts_ms:
            return
        self._gateways[status.gateway] = _Gateway(status.site, status.online, status.ts_ms)
        self._dirty_gateways.add(status.gateway)
        verdict = 0 if status.online else 1
        for c in self._offline_gw:
            self._step(c, status.site, status.gateway, status.gateway, verdict, None, status.ts_ms)

    def set_posture(self, site: str, posture: Posture, now_ms: int) -> None:
        """Declare a site's posture; rules gated by posture look again at their devices."""
        if self.posture(site) == posture:
            return
        self._postures[site] = posture
        gated = [c for c in self._rules.values() if c.postures is not None and c.point]
        self._reevaluate(gated, site, now_ms)

    def tick(self, now_ms: int) -> None:
        """What time alone decides: due timers, stale devices, repeats of critical alerts."""
        if self._timers:
            due = [(k, t) for k, t in self._timers.items() if t <= now_ms]
            for key, t in due:
                del self._timers[key]
                self._fire(key, t)
        for c in self._stale:
            self._check_stale(c, now_ms)
        if self._repeat_ms is not None and self._critical:
            for key in sorted(self._critical):
                st = self._states.get(key)
                if st is None or st.active is None:
                    continue
                if now_ms - st.active.notified_ms >= self._repeat_ms:
                    st.active.notified_ms = now_ms
                    self._dirty_rules.add(key)
                    self.stats.repeats += 1
                    self._emit(self._rules[key[0]], key, st, now_ms, active=True, repeat=True)

    def events(self) -> list[AlertEvent]:
        """The events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    # -- evaluation ----------------------------------------------------------------------------

    def _conds(self, c: _Compiled, d: _Device) -> bool | None:
        """True, False, or None when a condition's point is not known yet."""
        if c.postures is not None and self.posture(d.site) not in c.postures:
            return False
        result: bool | None = True
        for cond, test in c.conds:
            if cond.scope == "device":
                v = d.cond.get(cond.point, _MISSING)
                ok: bool | None = None if v is _MISSING else test(v)
            else:
                values = self._site_cond.get(d.site, {}).get((cond.device_kind, cond.point))
                if not values:
                    ok = None
                elif cond.match == "all":
                    ok = all(test(v) for v in values.values())
                else:
                    ok = any(test(v) for v in values.values())
            if ok is False:
                return False
            if ok is None:
                result = None
        return result

    def _compare(self, c: _Compiled, site: str, value: FieldValue) -> int | None:
        """1 violating, 0 may clear, -1 in the hysteresis band, None: not comparable."""
        rule = c.rule
        assert isinstance(rule, ThresholdRule | PostureRule)
        if rule.equals is not None:
            same = isinstance(value, bool) == isinstance(rule.equals, bool) and value == rule.equals
            return 1 if same else 0
        if rule.not_equals is not None:
            same = (
                isinstance(value, bool) == isinstance(rule.not_equals, bool)
                and value == rule.not_equals
            )
            return 0 if same else 1
        if not _numeric(value):
            return None
        assert isinstance(value, int | float)
        below, above = self._site_limits(c, site)
        h = rule.hysteresis
        if (below is not None and value < below) or (above is not None and value > above):
            return 1
        if (below is not None and value < below + h) or (above is not None and value > above - h):
            return -1
        return 0

    def _eval(self, c: _Compiled, d: _Device, value: FieldValue, ts: int, reeval: bool) -> None:
        kind = c.kind
        if kind == "threshold" or kind == "posture":
            ok = self._conds(c, d) if c.gated else True
            if ok is None:
                return
            verdict = self._compare(c, d.site, value) if ok else 0
            if verdict is not None:
                self._step(c, d.site, d.device, d.gateway, verdict, value, ts)
        elif kind == "trend":
            self._trend(c, d, value, ts, reeval)
        elif kind == "flatline":
            self._flatline(c, d, value, ts, reeval)

    def _step(
        self,
        c: _Compiled,
        site: str,
        device: str,
        gateway: str,
        verdict: int,
        value: FieldValue | None,
        ts: int,
    ) -> None:
        """Advance the raise/clear timers of one key; ``verdict`` as in ``_compare``."""
        key = (c.name, site, device)
        st = self._states.get(key)
        if st is None:
            if verdict != 1:
                return
            st = self._states[key] = _State(gateway=gateway)
        st.last_value = value
        if verdict == 1:
            if st.clear_since is not None:
                st.clear_since = None
                self._timers.pop(key, None)
                self._dirty_rules.add(key)
            if st.active is not None:
                return
            if st.pending_since is None:
                st.pending_since = ts
                self._dirty_rules.add(key)
            due = st.pending_since + c.for_ms
            if ts >= due:
                self._timers.pop(key, None)
                self._raise(c, key, st, due, value)
            else:
                self._timers[key] = due
            return
        if st.pending_since is not None:
            st.pending_since = None
            self._timers.pop(key, None)
            self._dirty_rules.add(key)
        if verdict == 0 and st.active is not None:
            if st.clear_since is None:
                st.clear_since = ts
                self._dirty_rules.add(key)
            due = st.clear_since + c.clear_for_ms
            if ts >= due:
                self._timers.pop(key, None)
                self._clear(c, key, st, due, value)
            else:
                self._timers[key] = due
            return
        if st.clear_since is not None:
            st.clear_since = None
            self._timers.pop(key, None)
            self._dirty_rules.add(key)
        if st.active is None:
            self._drop(key)

    def _drop(self, key: RuleKey) -> None:
        if self._states.pop(key, None) is not None:
            self._timers.pop(key, None)
            self._dirty_rules.add(key)

    def _trend(self, c: _Compiled, d: _Device, value: FieldValue, ts: int, reeval: bool) -> None:
        rule = c.rule
        assert isinstance(rule, TrendRule)
        if not _numeric(value):
            return
        assert isinstance(value, int | float)
        ok = self._conds(c, d) if c.gated else True
        if ok is None:
            return
        key = (c.name, d.site, d.device)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State(gateway=d.gateway, window=[])
        window = st.window if st.window is not None else []
        st.window = window
        st.last_value = value
        if not ok:
            if rule.reset_when_off and window:
                window.clear()
                self._dirty_rules.add(key)
            if st.active is not None:
                self._clear(c, key, st, ts, value)
            return
        if reeval or (window and ts - window[-1][0] < rule.sample_every_s * 1000):
            return
        window.append((ts, float(value)))
        start = ts - int(rule.window_s * 1000)
        if window[0][0] < start:
            del window[: next(i for i, (t, _) in enumerate(window) if t >= start)]
        self._dirty_rules.add(key)
        if len(window) < rule.min_points:
            return
        predicted = self._predict(rule, window, self._site_limits(c, d.site)[0] or 0.0)
        lead = None if predicted is None else predicted - ts
        horizon = rule.horizon_s * 1000
        clear_horizon = (rule.clear_horizon_s or rule.horizon_s * 1.25) * 1000
        if lead is not None and lead <= horizon:
            if st.active is None:
                self._raise(c, key, st, ts, value, predicted)
        elif (lead is None or lead > clear_horizon) and st.active is not None:
            self._clear(c, key, st, ts, value)

    @staticmethod
    def _predict(rule: TrendRule, window: Sequence[tuple[int, float]], limit: float) -> int | None:
        """When the fitted line reaches the limit (ms), or None if it heads away from it."""
        t0 = window[0][0]
        slope, intercept = theil_sen([((t - t0) / 1000.0, v) for t, v in window])
        x_now = (window[-1][0] - t0) / 1000.0
        fitted = intercept + slope * x_now
        rising = rule.direction == "rising"
        if (fitted >= limit) if rising else (fitted <= limit):
            return window[-1][0]
        if (slope <= 0) if rising else (slope >= 0):
            return None
        seconds = (limit - fitted) / slope
        if not math.isfinite(seconds) or seconds > 1e11:
            return None
        return window[-1][0] + int(seconds * 1000)

    def _flatline(self, c: _Compiled, d: _Device, value: FieldValue, ts: int, reeval: bool) -> None:
        rule = c.rule
        assert isinstance(rule, FlatlineRule)
        ok = self._conds(c, d) if c.gated else True
        if ok is None:
            return
        key = (c.name, d.site, d.device)
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State(gateway=d.gateway)
        st.last_value = value
        if not ok or st.ref_ts is None:
            # The window starts when the conditions start holding (a stopped fan is flat).
            if st.ref_saved:
                self._dirty_rules.add(key)  # the persisted reference no longer holds
            st.ref, st.ref_ts, st.ref_saved = value, (ts if ok else None), False
            self._timers.pop(key, None)
            if not ok and st.active is not None:
                self._clear(c, key, st, ts, value)
            return
        if reeval:
            return
        ref = st.ref
        if _numeric(value) and _numeric(ref):
            assert isinstance(value, int | float) and isinstance(ref, int | float)
            moved = abs(value - ref) > rule.min_change
        else:
            moved = value != ref
        if moved:
            st.ref, st.ref_ts, st.ref_saved = value, ts, False
            self._timers.pop(key, None)
            if st.active is not None:
                self._clear(c, key, st, ts, value)
            return
        if st.active is not None:
            return
        window_ms = int(rule.window_s * 1000)
        due = st.ref_ts + window_ms
        if ts >= due:
            self._timers.pop(key, None)
            self._raise(c, key, st, due, value)
            return
        self._timers[key] = due
        # Persist a reference only once it has held a while: a live sensor moves every few
        # samples, and writing its reference each time would cost a row per sample.
        if not st.ref_saved and ts - st.ref_ts >= window_ms // 10:
            st.ref_saved = True
            self._dirty_rules.add(key)

    def _fire(self, key: RuleKey, due: int) -> None:
        """A timer ran out with no newer sample: the last verdict has held until ``due``."""
        c = self._rules.get(key[0])
        st = self._states.get(key)
        if c is None or st is None:
            return
        if c.kind == "flatline":
            if st.active is None and st.ref_ts is not None:
                self._raise(c, key, st, due, st.ref)
        elif st.active is None:
            if st.pending_since is not None and st.pending_since + c.for_ms <= due:
                self._raise(c, key, st, st.pending_since + c.for_ms, st.last_value)
        elif st.clear_since is not None and st.clear_since + c.clear_for_ms <= due:
            self._clear(c, key, st, st.clear_since + c.clear_for_ms, st.last_value)

    def _gateway_down(self, gateway: str) -> bool:
        g = self._gateways.get(gateway)
        return g is not None and not g.online

    def _check_stale(self, c: _Compiled, now_ms: int) -> None:
        rule = c.rule
        assert isinstance(rule, StaleRule)
        limit_ms = int(rule.interval_s * rule.factor * 1000)
        for d in self._devices.values():
            if c.device_kind is not None and d.kind != c.device_kind:
                continue
            if rule.point is None:
                last = d.last_seen
            else:
                seen = d.point_seen.get(rule.point)
                if seen is None:
                    continue  # never reported: the point may not be in this device's profile
                last = seen
            if now_ms - last <= limit_ms:
                continue
            # An offline device or gateway has its own alert: silence follows from it.
            if not d.online or self._gateway_down(d.gateway):
                continue
            key = (c.name, d.site, d.device)
            st = self._states.get(key)
            if st is not None and st.active is not None:
                continue
            if st is None:
                st = self._states[key] = _State(gateway=d.gateway)
            d.stale_active += 1
            self._raise(c, key, st, last + limit_ms, None)

    def _clear_stale(self, d: _Device, fields: Mapping[str, FieldValue], ts: int) -> None:
        for c in self._stale:
            rule = c.rule
            assert isinstance(rule, StaleRule)
            if c.device_kind is not None and c.device_kind != d.kind:
                continue
            if rule.point is not None and rule.point not in fields:
                continue
            key = (c.name, d.site, d.device)
            st = self._states.get(key)
            if st is not None and st.active is not None:
                self._clear(c, key, st, ts, None)
                self._drop(key)
                d.stale_active = max(0, d.stale_active - 1)

    # -- events --------------------------------------------------------------------------------

    def _raise(
        self,
        c: _Compiled,
        key: RuleKey,
        st: _State,
        ts: int,
        value: FieldValue | None,
        predicted: int | None = None,
    ) -> None:
        st.pending_since = None
        st.clear_since = None
        st.active = _Active(
            raised_ts=ts,
            severity=c.severity,
            message=self._message(c, key, value, predicted, ts),
            value=value,
            predicted_ts=predicted,
            notified_ms=ts,
        )
        if c.severity == "critical":
            self._critical.add(key)
        self._dirty_rules.add(key)
        self.stats.raised += 1
        self._emit(c, key, st, ts, active=True)

    def _clear(
        self, c: _Compiled, key: RuleKey, st: _State, ts: int, value: FieldValue | None
    ) -> None:
        if st.active is None:
            return
        self._emit(c, key, st, ts, active=False, value=value)
        st.active = None
        st.clear_since = None
        self._critical.discard(key)
        self._timers.pop(key, None)
        self._dirty_rules.add(key)
        self.stats.cleared += 1
        if c.kind in ("threshold", "posture", "offline") and st.pending_since is None:
            self._drop(key)

    def _emit(
        self,
        c: _Compiled,
        key: RuleKey,
        st: _State,
        ts: int,
        *,
        active: bool,
        repeat: bool = False,
        value: FieldValue | None = None,
    ) -> None:
        a = st.active
        assert a is not None
        alert = Alert(
            active=active,
            ts=max(0, ts),
            raised_ts=max(0, a.raised_ts),
            severity=a.severity,  # type: ignore[arg-type]
            kind=c.kind,
            point=c.point,
            message=a.message if active else f"cleared: {a.message}",
            value=a.value if active else value,
            predicted_ts=a.predicted_ts,
        )
        self._events.append(AlertEvent(key[1], key[0], key[2], st.gateway, alert, repeat))

    def _message(
        self, c: _Compiled, key: RuleKey, value: FieldValue | None, predicted: int | None, ts: int
    ) -> str:
        rule = c.rule
        site, device = key[1], key[2]
        below, above = self._site_limits(c, site)
        limit: object = below if below is not None else above
        if isinstance(rule, ThresholdRule | PostureRule):
            if rule.equals is not None:
                limit = rule.equals
            elif rule.not_equals is not None:
                limit = rule.not_equals
            elif above is not None and isinstance(value, int | float) and value > above:
                limit = above
        elif isinstance(rule, StaleRule):
            limit = rule.interval_s * rule.factor
        elif isinstance(rule, FlatlineRule):
            limit = rule.window_s
        lead_s = (predicted - ts) / 1000 if predicted is not None else 0.0
        fields: dict[str, Any] = {
            "value": value,
            "limit": limit,
            "site": site,
            "device": device,
            "point": c.point or "",
            "rule": c.name,
            "days": lead_s / 86400,
            "hours": lead_s / 3600,
            "predicted": (
                datetime.fromtimestamp(predicted / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if predicted is not None
                else ""
            ),
        }
        if rule.message:
            try:
                return rule.message.format_map(fields)
            except (KeyError, ValueError, TypeError, IndexError, AttributeError):
                pass  # e.g. {value:.1f} with no value: fall back to the plain message
        return _default_message(c, fields, self.posture(site))

    # -- persistence ---------------------------------------------------------------------------

    def take_changes(self) -> list[tuple[str, str | None]]:
        """Changed state since the last call, as (key, JSON or None to delete) rows to persist.

        Samples themselves are not persisted: timers, windows, references, active alerts,
        the devices known (with the condition values) and gateway states are.
        """
        out: list[tuple[str, str | None]] = []
        for rk in self._dirty_rules:
            st = self._states.get(rk)
            out.append((f"r/{rk[0]}/{rk[1]}/{rk[2]}", None if st is None else _dump_state(st)))
        for dk in self._dirty_devices:
            d = self._devices.get(dk)
            out.append((f"d/{dk[0]}/{dk[1]}", None if d is None else _dump_device(d)))
        for gw in self._dirty_gateways:
            g = self._gateways.get(gw)
            doc = None if g is None else json.dumps({"s": g.site, "o": g.online, "t": g.ts_ms})
            out.append((f"g/{gw}", doc))
        self._dirty_rules.clear()
        self._dirty_devices.clear()
        self._dirty_gateways.clear()
        return out

    def _restore(self, state: Mapping[str, str], now_ms: int) -> None:
        orphans: list[tuple[RuleKey, _State]] = []
        for key, text in state.items():
            kind, _, rest = key.partition("/")
            doc = json.loads(text)
            if kind == "d":
                site, _, dev = rest.partition("/")
                d = self._device(site, dev, doc["k"], doc["g"], now_ms)
                # A restart gives every device a full stale period before it counts as silent.
                d.last_seen = now_ms
                d.online, d.status_ts = doc["o"], doc["st"]
                d.cond = dict(doc["c"])
                d.values.update(d.cond)
                for point, value in d.cond.items():
                    by_point = self._site_cond.setdefault(site, {})
                    by_point.setdefault((d.kind, point), {})[dev] = value
            elif kind == "g":
                self._gateways[rest] = _Gateway(doc["s"], doc["o"], doc["t"])
        for key, text in state.items():
            kind, _, rest = key.partition("/")
            if kind != "r":
                continue
            rule, site, dev = rest.split("/", 2)
            st = _load_state(json.loads(text))
            rk = (rule, site, dev)
            c = self._rules.get(rule)
            if c is None:
                if st.active is not None:
                    orphans.append((rk, st))
                self._dirty_rules.add(rk)  # delete it
                continue
            self._states[rk] = st
            if st.active is not None and st.active.severity == "critical":
                self._critical.add(rk)
            if st.active is not None and c.kind == "stale":
                sd = self._devices.get((site, dev))
                if sd is not None:
                    sd.stale_active += 1
            # A timer that ran when the collector stopped goes on from its persisted start.
            if st.active is None and st.pending_since is not None:
                self._timers[rk] = st.pending_since + c.for_ms
            elif st.active is not None and st.clear_since is not None:
                self._timers[rk] = st.clear_since + c.clear_for_ms
            elif c.kind == "flatline" and st.active is None and st.ref_ts is not None:
                assert isinstance(c.rule, FlatlineRule)
                self._timers[rk] = st.ref_ts + int(c.rule.window_s * 1000)
        for rk, st in orphans:
            # The rule left the pack: clear its alerts, or they would stay retained forever.
            assert st.active is not None
            alert = Alert(
                active=False,
                ts=max(0, now_ms),
                raised_ts=st.active.raised_ts,
                severity=st.active.severity,  # type: ignore[arg-type]
                message=f"cleared: rule {rk[0]} was removed from the rule pack",
            )
            self._events.append(AlertEvent(rk[1], rk[0], rk[2], st.gateway, alert))

    # -- introspection for tests and the bench ---------------------------------------------------

    def active(self) -> dict[RuleKey, int]:
        """Active alerts: (rule, site, device) → raised_ts."""
        return {k: s.active.raised_ts for k, s in self._states.items() if s.active is not None}

    @property
    def rules(self) -> list[str]:
        return list(self._rules)


def _default_message(c: _Compiled, f: Mapping[str, Any], posture: str) -> str:
    device, point, value, limit = f["device"], f["point"], f["value"], f["limit"]
    rule = c.rule
    if isinstance(rule, OfflineRule):
        what = "gateway" if rule.target == "gateway" else "device"
        return f"{what} {device} is offline"
    if isinstance(rule, StaleRule):
        of = f" point {rule.point}" if rule.point else ""
        return f"no data from {device}{of} for more than {limit:g} s"
    if isinstance(rule, FlatlineRule):
        return f"{point} of {device} has not moved for {limit:g} s (stuck sensor?)"
    if isinstance(rule, TrendRule):
        return f"{point} of {device} is predicted to reach {limit:g} in {f['days']:.1f} days"
    if isinstance(rule, PostureRule):
        return f"{point} of {device} is {value} in {posture} posture"
    return f"{point} of {device} is {value} (limit {limit})"


def _dump_state(st: _State) -> str:
    a = st.active
    doc: dict[str, Any] = {
        "g": st.gateway,
        "p": st.pending_since,
        "c": st.clear_since,
        "v": st.last_value,
        "a": None
        if a is None
        else [a.raised_ts, a.severity, a.message, a.value, a.predicted_ts, a.notified_ms],
    }
    if st.window is not None:
        doc["w"] = st.window
    if st.ref_ts is not None:
        doc["r"], doc["rt"] = st.ref, st.ref_ts
    return json.dumps(doc, separators=(",", ":"))


def _load_state(doc: Mapping[str, Any]) -> _State:
    a = doc.get("a")
    active = None if a is None else _Active(a[0], a[1], a[2], a[3], a[4], a[5])
    window = doc.get("w")
    return _State(
        gateway=doc.get("g", ""),
        pending_since=doc.get("p"),
        clear_since=doc.get("c"),
        active=active,
        last_value=doc.get("v"),
        window=None if window is None else [(int(t), float(v)) for t, v in window],
        ref=doc.get("r"),
        ref_ts=doc.get("rt"),
        ref_saved=doc.get("rt") is not None,
    )


def _dump_device(d: _Device) -> str:
    doc = {"k": d.kind, "g": d.gateway, "o": d.online, "st": d.status_ts, "c": d.cond}
    return json.dumps(doc, separators=(",", ":"))
