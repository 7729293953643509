"""The alert engine: rules as data, evaluated per sample, published and stored as events.

``rules`` (the YAML format) and ``engine`` are pure logic; ``state`` (SQLite) and ``service``
(MQTT and the store) are the IO at the edges. See docs/alerts.md.
"""

from collector.alerts.engine import AlertEngine, AlertEvent, theil_sen
from collector.alerts.rules import DEFAULT_RULES, RuleError, RulePack, load_rules, parse_rules

__all__ = [
    "DEFAULT_RULES",
    "AlertEngine",
    "AlertEvent",
    "RuleError",
    "RulePack",
    "load_rules",
    "parse_rules",
    "theil_sen",
]
