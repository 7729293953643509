"""The rule format: the default pack loads, and errors name the rule and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collector import CollectorSettings
from collector.alerts import DEFAULT_RULES, RuleError, load_rules, parse_rules
from collector.alerts.rules import ThresholdRule, TrendRule
from shelterwatch.profiles import load_profile


def _rule(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "overpressure_low",
        "kind": "threshold",
        "device_kind": "ventilation",
        "point": "overpressure",
        "below": 30,
    }
    return base | kw


def _error(rules: list[dict[str, Any]]) -> str:
    with pytest.raises(RuleError) as info:
        parse_rules({"version": 1, "rules": rules}, "test.yaml")
    return str(info.value)


def test_the_default_pack_loads_and_cites_its_sources() -> None:
    pack = load_rules()
    assert pack.source == str(DEFAULT_RULES)
    kinds = {r.kind for r in pack.rules}
    assert kinds == {"threshold", "posture", "trend", "stale", "flatline", "offline"}
    for rule in pack.rules:
        assert "domain §" in rule.source, f"{rule.name} has no source in the domain report"


def test_default_rules_watch_points_the_builtin_profiles_have() -> None:
    profiles = {
        p.kind: {pt.name for pt in p.points}
        for p in (
            load_profile(n)
            for n in ("blast_door", "ventilation", "water", "environment", "power", "siren")
        )
    }
    for rule in load_rules().rules:
        point = getattr(rule, "point", None)
        if point is None or rule.device_kind is None:
            continue
        if rule.name == "fan_bearing_hot":
            # Documented: no built-in profile has a bearing temperature.
            assert point not in profiles[rule.device_kind]
            continue
        assert point in profiles[rule.device_kind], rule.name
        for cond in getattr(rule, "when", []):
            assert cond.point in profiles[cond.device_kind], (rule.name, cond.point)


def test_an_error_names_the_rule_and_the_key() -> None:
    rules = [_rule(name=f"r{i}") for i in range(3)] + [_rule(for_s=-5)]
    text = _error(rules)
    assert "test.yaml" in text
    assert "rules[3] (overpressure_low).for_s:" in text


def test_every_broken_rule_is_reported() -> None:
    text = _error(
        [
            _rule(name="a", severity="loud"),
            _rule(name="b", kind="magic"),
            _rule(name="c", below="reserve"),
            _rule(name="a"),
            _rule(name="d", below=None, equals=True, above=40),
            {
                "name": "e",
                "kind": "trend",
                "device_kind": "ventilation",
                "point": "filter_dp",
                "limit": 100,
                "window_s": 100000,
                "sample_every_s": 1,
                "horizon_s": 10,
            },
            _rule(name="f", message="{nope}"),
            _rule(
                name="g",
                when=[{"device_kind": "door", "point": "closed", "value": True, "scope": "device"}],
            ),
            _rule(name="h", unknown_key=1),
        ]
    )
    assert "rules[0] (a).severity:" in text
    assert "rules[1] (b).kind: 'magic' is not one of" in text
    assert "rules[2] (c).below: unknown parameter 'reserve'" in text
    assert "rules[3] (a).name: duplicate of rules[0]" in text
    assert "rules[4] (d).below: give exactly one of" in text
    assert "rules[5] (e).sample_every_s:" in text
    assert "rules[6] (f).message:" in text
    assert "rules[7] (g).when.0.scope:" in text
    assert "rules[8] (h).unknown_key:" in text


def test_a_posture_rule_needs_postures() -> None:
    text = _error([_rule(kind="posture", below=None, equals=False, point="closed")])
    assert "rules[0] (overpressure_low).postures:" in text


def test_parameters_and_yaml_types() -> None:
    pack = parse_rules(
        {
            "rules": [
                _rule(below="reserve", params={"reserve": 30}),
                _rule(name="ac", point="ac_power", below=None, equals=False),
            ]
        }
    )
    first, second = pack.rules
    assert isinstance(first, ThresholdRule) and first.below == "reserve"
    assert isinstance(second, ThresholdRule) and second.equals is False


def test_load_rules_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [_rule(hysteresis=-1)]}), encoding="utf-8")
    with pytest.raises(RuleError, match=r"rules\.yaml.*\n  rules\[0\] \(overpressure_low\)"):
        load_rules(path)
    path.write_text("rules: [", encoding="utf-8")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules(path)


def test_trend_rule_defaults() -> None:
    pack = parse_rules(
        {
            "rules": [
                {
                    "name": "t",
                    "kind": "trend",
                    "device_kind": "ventilation",
                    "point": "filter_dp",
                    "limit": 100,
                    "window_s": 100,
                    "sample_every_s": 1,
                    "horizon_s": 10,
                }
            ]
        }
    )
    rule = pack.rules[0]
    assert isinstance(rule, TrendRule) and rule.direction == "rising" and rule.min_points == 10


def test_alert_settings_are_off_by_default_and_validated() -> None:
    s = CollectorSettings()
    assert s.alerts.enabled is False
    s = CollectorSettings.model_validate(
        {
            "alerts": {
                "enabled": True,
                "postures": {"shelter-01": "wartime"},
                "site_params": {"shelter-01": {"water_reserve_pct": 40}},
            }
        }
    )
    assert s.alerts.postures == {"shelter-01": "wartime"}
    with pytest.raises(ValueError, match=r"alerts\.postures\.shelter-01"):
        CollectorSettings.model_validate({"alerts": {"postures": {"shelter-01": "war"}}})
