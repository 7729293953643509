"""The default alert rule pack with its time compressed, for tests that run in seconds.

``fast_rules`` reads ``collector/alerts/default_rules.yaml`` and divides every time parameter
of every rule (``TIME_KEYS``) by a factor, and nothing else: limits, hysteresis, conditions,
severities, ``min_points``, ``factor`` and the rest stay as shipped, so the rules' logic is the
shipped one and only their clock runs faster. A rule can get its own factor (a trend rule that
samples hourly needs hours turned into seconds to collect its points within a test).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from collector.alerts import DEFAULT_RULES, parse_rules

__all__ = ["TIME_KEYS", "fast_rules", "without_time"]

# Every rule key that is a duration in seconds (docs/alerts.md, collector/alerts/rules.py).
TIME_KEYS = (
    "for_s",
    "clear_for_s",
    "window_s",
    "sample_every_s",
    "horizon_s",
    "clear_horizon_s",
    "interval_s",
)


def default_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    return doc


def without_time(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The pack with its time keys removed: what must be identical after scaling."""
    out = copy.deepcopy(dict(doc))
    out["rules"] = [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in out["rules"]]
    return out


def fast_rules(
    path: Path, factor: float, per_rule: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Write the default pack with every time parameter divided by ``factor`` to ``path``.

    ``per_rule`` gives single rules another factor. Returns the written document, checked:
    it validates as a rule pack and differs from the default pack only in time keys.
    """
    per_rule = dict(per_rule or {})
    shipped = default_doc()
    names = {r["name"] for r in shipped["rules"]}
    unknown = sorted(set(per_rule) - names)
    assert not unknown, f"per_rule names rules not in the default pack: {unknown}"
    doc = copy.deepcopy(shipped)
    for rule in doc["rules"]:
        f = per_rule.get(rule["name"], factor)
        for key in TIME_KEYS:
            if key in rule:
                rule[key] = float(rule[key]) / f
    assert without_time(doc) == without_time(shipped)
    parse_rules(doc, str(path))  # the scaled pack must still be a valid pack
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return doc
