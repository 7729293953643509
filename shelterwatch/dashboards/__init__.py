"""Grafana dashboards as code: load and check the JSON, expand Grafana's macros, push.

Tooling only: it imports no service. The dashboards themselves live in the repository's
top-level ``dashboards/`` folder (docs/dashboards.md).
"""

from shelterwatch.dashboards.load import (
    DatasourceSpec,
    default_dir,
    load_dashboards,
    load_datasource,
)
from shelterwatch.dashboards.macros import ALL, MacroError, TimeRange, Variable, expand
from shelterwatch.dashboards.model import Dashboard, DashboardError, Panel, Query, TemplateVar

__all__ = [
    "ALL",
    "Dashboard",
    "DashboardError",
    "DatasourceSpec",
    "MacroError",
    "Panel",
    "Query",
    "TemplateVar",
    "TimeRange",
    "Variable",
    "default_dir",
    "expand",
    "load_dashboards",
    "load_datasource",
]
