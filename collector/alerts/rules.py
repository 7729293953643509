"""Alert rules as data: the YAML format, validated at load. Pure logic: no IO but reading a file.

A rule pack is ``{version: 1, rules: [...]}``. Each rule is validated on its own, so an error
names the rule and the key (``rules[3] (overpressure_low).for_s: ...``) and every broken rule
is reported at once, not only the first. See docs/alerts.md for the format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.errors import ConfigError

__all__ = [
    "DEFAULT_RULES",
    "Condition",
    "FlatlineRule",
    "OfflineRule",
    "Posture",
    "PostureRule",
    "Rule",
    "RuleError",
    "RulePack",
    "StaleRule",
    "ThresholdRule",
    "TrendRule",
    "load_rules",
    "parse_rules",
]

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Severity = Literal["critical", "major", "minor", "warning"]
Posture = Literal["peacetime", "converting", "wartime"]
Op = Literal["==", "!=", "<", "<=", ">", ">="]
# YAML's true stays a bool and 1 an int: a rule on a bool point must not match the number 1.
Scalar = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr
# A limit is a number, or the name of a parameter of the rule (overridable per site).
Limit = Annotated[float, Field(allow_inf_nan=False)] | str
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# Theil–Sen is O(n²) in the window's points; this keeps one evaluation in the milliseconds.
MAX_TREND_POINTS = 400


class RuleError(ConfigError):
    """A rule pack that does not validate; the message lists every error with its key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """A point condition on the site's latest values: ``ventilation.mode == filtered``.

    ``match: all`` needs every device of that kind at the site to satisfy it ("both doors are
    closed"), ``any`` at least one. ``scope: device`` reads the rule's own device instead
    (its kind must be the rule's). A condition on a point no device has reported yet is
    unknown, and an unknown condition leaves the rule as it is: no raise, no clear.
    """

    device_kind: Slug
    point: Annotated[str, Field(min_length=1)]
    op: Op = "=="
    value: Scalar
    match: Literal["all", "any"] = "all"
    scope: Literal["site", "device"] = "site"


class _Rule(_Model):
    name: Slug
    severity: Severity = "warning"
    # Device kind (profile `kind`) the rule watches; None (stale, offline only) = every kind.
    device_kind: Slug | None = None
    # str.format template: {value} {limit} {site} {device} {point} {rule}, trend: {days} {hours}
    # {predicted}; empty = a message made from the rule.
    message: str = ""
    # Where the threshold comes from (docs, standards); shown in docs/alerts.md.
    source: str = ""
    # Apply only while the site's declared posture is one of these (None = always).
    postures: list[Posture] | None = None
    # Defaults of the parameters that limits refer to by name; sites override them.
    params: dict[Slug, Annotated[float, Field(allow_inf_nan=False)]] = Field(default_factory=dict)


class _Comparison(_Rule):
    point: Annotated[str, Field(min_length=1)]
    # Exactly one of: below and/or above (numbers), equals, not_equals.
    below: Limit | None = None
    above: Limit | None = None
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    # Clears only once the value is back past the limit by this much (below: >= below + h).
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    for_s: Seconds = 0.0
    clear_for_s: Seconds = 0.0
    when: list[Condition] = Field(default_factory=list)


class ThresholdRule(_Comparison):
    """A reading past a limit for ``for_s``; clears past the limit plus hysteresis."""

    kind: Literal["threshold"]


class PostureRule(_Comparison):
    """A reading that contradicts the site's declared posture (``postures`` is required)."""

    kind: Literal["posture"]


class TrendRule(_Rule):
    """Theil–Sen slope over ``window_s``; raises when the limit is predicted within the horizon."""

    kind: Literal["trend"]
    point: Annotated[str, Field(min_length=1)]
    limit: Limit
    # The limit is limit × limit_factor: "2× the clean value" is limit: clean_dp, factor 2.
    limit_factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    direction: Literal["rising", "falling"] = "rising"
    window_s: PositiveSeconds
    # One point of the window per this many seconds (the first sample of each interval).
    sample_every_s: PositiveSeconds
    horizon_s: PositiveSeconds
    # Clears once the predicted time is beyond this (default 1.25 × horizon_s): hysteresis.
    clear_horizon_s: PositiveSeconds | None = None
    min_points: Annotated[int, Field(ge=3, le=MAX_TREND_POINTS)] = 10
    # Empty the window whenever the conditions stop holding (a door that opened deflates its
    # seal on purpose; the decay before and after must not be fitted as one line).
    reset_when_off: bool = False
    when: list[Condition] = Field(default_factory=list)


class StaleRule(_Rule):
    """No data from a device (or one of its points) for ``factor × interval_s``."""

    kind: Literal["stale"]
    point: str | None = None
    # The collector does not know profiles: give the interval at which data must arrive. With
    # report by exception that is the gateway's snapshot_interval_s, not the poll interval.
    interval_s: PositiveSeconds
    factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3.0


class FlatlineRule(_Rule):
    """A value that has not moved by more than ``min_change`` in ``window_s`` (stuck sensor)."""

    kind: Literal["flatline"]
    point: Annotated[str, Field(min_length=1)]
    window_s: PositiveSeconds
    min_change: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    when: list[Condition] = Field(default_factory=list)


class OfflineRule(_Rule):
    """A device reported offline by its gateway, or a gateway gone (its will) for ``for_s``."""

    kind: Literal["offline"]
    target: Literal["device", "gateway"] = "device"
    for_s: Seconds = 0.0
    clear_for_s: Seconds = 0.0


Rule = ThresholdRule | PostureRule | TrendRule | StaleRule | FlatlineRule | OfflineRule

_KINDS: dict[str, type[BaseModel]] = {
    "threshold": ThresholdRule,
    "posture": PostureRule,
    "trend": TrendRule,
    "stale": StaleRule,
    "flatline": FlatlineRule,
    "offline": OfflineRule,
}


@dataclass(frozen=True, slots=True)
class RulePack:
    rules: tuple[Rule, ...]
    source: str = ""

    def names(self) -> list[str]:
        return [r.name for r in self.rules]


def _where(index: int, name: str) -> str:
    return f"rules[{index}] ({name})" if name else f"rules[{index}]"


def _semantic_errors(rule: Rule) -> list[tuple[str, str]]:
    """Checks across keys that field types cannot express: (key, message) pairs."""
    errors: list[tuple[str, str]] = []

    def check_limit(key: str, limit: float | str | None) -> None:
        if isinstance(limit, str) and limit not in rule.params:
            errors.append(
                (key, f"unknown parameter {limit!r}; declare it under params with a default")
            )

    if isinstance(rule, ThresholdRule | PostureRule):
        groups = [
            rule.below is not None or rule.above is not None,
            rule.equals is not None,
            rule.not_equals is not None,
        ]
        if sum(groups) != 1:
            errors.append(("below", "give exactly one of: below and/or above, equals, not_equals"))
        check_limit("below", rule.below)
        check_limit("above", rule.above)
        if (
            isinstance(rule.below, float)
            and isinstance(rule.above, float)
            and rule.below >= rule.above
        ):
            errors.append(("above", f"must be greater than below ({rule.below:g})"))
        if isinstance(rule, PostureRule) and not rule.postures:
            errors.append(("postures", "a posture rule needs the postures it applies in"))
    if isinstance(rule, TrendRule):
        check_limit("limit", rule.limit)
        points = rule.window_s / rule.sample_every_s
        if points > MAX_TREND_POINTS:
            errors.append(
                (
                    "sample_every_s",
                    f"window_s / sample_every_s = {points:g} points; at most {MAX_TREND_POINTS}",
                )
            )
        elif points < rule.min_points:
            errors.append(
                ("min_points", f"the window holds only {math.floor(points)} points at most")
            )
        if rule.clear_horizon_s is not None and rule.clear_horizon_s < rule.horizon_s:
            errors.append(("clear_horizon_s", "must be at least horizon_s"))
    if isinstance(rule, ThresholdRule | PostureRule | TrendRule | FlatlineRule):
        if rule.device_kind is None:
            errors.append(("device_kind", f"a {rule.kind} rule needs the device kind it watches"))
        for i, cond in enumerate(rule.when):
            if cond.scope == "device" and cond.device_kind != rule.device_kind:
                errors.append((f"when.{i}.scope", "scope: device needs the rule's own device_kind"))
    if isinstance(rule, StaleRule) and rule.point is not None and rule.device_kind is None:
        errors.append(("device_kind", "a stale rule on a point needs the device kind"))
    if isinstance(rule, OfflineRule) and rule.target == "gateway" and rule.device_kind:
        errors.append(("device_kind", "a gateway offline rule has no device kind"))
    if rule.message:
        fake: dict[str, Any] = {
            "value": 1.0,
            "limit": 1.0,
            "site": "s",
            "device": "d",
            "point": "p",
            "rule": rule.name,
            "days": 1.0,
            "hours": 1.0,
            "predicted": "2025-01-01",
        }
        try:
            rule.message.format_map(fake)
        except (KeyError, ValueError, IndexError, AttributeError) as exc:
            errors.append(("message", f"not a valid template: {exc!r}"))
    return errors


def parse_rules(data: object, source: str = "rules") -> RulePack:
    """Validate a rule pack document; RuleError lists every error with ``rules[i] (name).key``."""
    if not isinstance(data, Mapping):
        raise RuleError(f"{source}: the top level must be a mapping with `rules:`")
    unknown = set(data) - {"version", "rules"}
    if unknown:
        raise RuleError(f"{source}: unknown top-level keys {sorted(unknown)} (version, rules)")
    if data.get("version", 1) != 1:
        raise RuleError(f"{source}: version: only version 1 is known")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str | bytes):
        raise RuleError(f"{source}: rules: must be a list of rules")
    errors: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, Mapping):
            errors.append(f"{_where(index, '')}: must be a mapping")
            continue
        name = str(raw.get("name", ""))
        where = _where(index, name)
        if name and name in seen:
            errors.append(f"{where}.name: duplicate of rules[{seen[name]}]")
        seen.setdefault(name, index)
        kind = raw.get("kind")
        model = _KINDS.get(str(kind))
        if model is None:
            errors.append(f"{where}.kind: {kind!r} is not one of {', '.join(_KINDS)}")
            continue
        try:
            rule: Rule = model.model_validate(raw)  # type: ignore[assignment]
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "(rule)"
                errors.append(f"{where}.{key}: {err['msg']}")
            continue
        for key, msg in _semantic_errors(rule):
            errors.append(f"{where}.{key}: {msg}")
        rules.append(rule)
    if errors:
        head = f"{source}: {len(errors)} invalid rule setting(s)"
        raise RuleError("\n  ".join([head, *errors]))
    return RulePack(tuple(rules), source)


def load_rules(path: Path | None = None) -> RulePack:
    """Load a rule pack from YAML; ``None`` loads the default pack shipped with the collector."""
    path = path or DEFAULT_RULES
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from exc
    return parse_rules(data, str(path))
