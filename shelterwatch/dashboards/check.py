"""Expand every query of a dashboard for one variable selection: for `check` and the tests.

Variable queries are expanded in dashboard order, so ``$site`` can depend on ``$district``
(Grafana expands a variable's query with the variables above it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shelterwatch.dashboards.load import default_dir, load_dashboards, load_datasource
from shelterwatch.dashboards.macros import ALL, TimeRange, Variable, expand
from shelterwatch.dashboards.model import Dashboard, DashboardError, Panel, Query, TemplateVar

__all__ = ["Rendered", "render_check", "rendered_queries", "to_variable"]

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Rendered:
    dashboard: Dashboard
    panel: Panel | None  # None for an annotation
    query: Query
    text: str

    @property
    def label(self) -> str:
        what = f"panel {self.panel.id} {self.panel.title!r}" if self.panel else "annotation"
        return f"{self.dashboard.title} ({self.dashboard.uid}) {what} query {self.query.ref_id}"


def to_variable(
    spec: TemplateVar, selected: Sequence[str] | None, options: Sequence[str] = ()
) -> Variable:
    """A dashboard variable with a selection; no selection means All (or the first custom
    option when the variable has no All)."""
    if not selected:
        selected = [ALL] if spec.include_all else list(options[:1] or spec.custom_options[:1])
    return Variable(
        name=spec.name,
        current=list(selected),
        multi=spec.multi,
        include_all=spec.include_all,
        all_value=spec.all_value,
        options=list(options or spec.custom_options),
    )


def rendered_queries(
    dashboard: Dashboard,
    variables: Mapping[str, Variable],
    time_range: TimeRange,
    min_interval: str | None,
    *,
    relative_time: bool = False,
) -> list[Rendered]:
    out: list[Rendered] = []
    for panel in dashboard.data_panels:
        for q in panel.queries:
            text = expand(
                q.text,
                variables,
                time_range,
                max_data_points=panel.resolution,
                min_interval=panel.min_interval or min_interval,
                relative_time=relative_time,
            )
            out.append(Rendered(dashboard, panel, q, text))
    for q in dashboard.annotations:
        text = expand(q.text, variables, time_range, min_interval=min_interval)
        out.append(Rendered(dashboard, None, q, text))
    return out


def _relative_range(raw_from: str, now_s: float) -> TimeRange:
    amount, unit = raw_from.removeprefix("now-")[:-1], raw_from[-1:]
    if not raw_from.startswith("now-") or not amount.isdigit() or unit not in _UNITS_MS:
        raise DashboardError(f"--range {raw_from!r}: use now-<number><s|m|h|d>, e.g. now-6h")
    to_ms = int(now_s * 1000)
    return TimeRange(to_ms - int(amount) * _UNITS_MS[unit], to_ms, raw_from, "now")


def render_check(
    directory: Path | None,
    sites: Sequence[str],
    devices: Sequence[str],
    raw_range: str,
    now_s: float,
) -> str:
    """Every dashboard checked, and each query expanded; without data, All reads as .*"""
    directory = directory or default_dir()
    ds = load_datasource(directory)
    dashboards = load_dashboards(directory)
    time_range = _relative_range(raw_range, now_s)
    chosen = {"site": list(sites), "device": list(devices)}
    lines = [
        f"{len(dashboards)} dashboard(s) in {directory} are valid; data source {ds.uid} "
        f"({ds.url}, database {ds.database})",
        f"queries for {raw_range} to now; a variable set to All is shown as .* (Grafana "
        "sends the list of its values)",
    ]
    for d in dashboards:
        variables: dict[str, Variable] = {}
        for spec in d.variables:
            var = to_variable(spec, chosen.get(spec.name))
            if var.is_all and not var.all_value:
                var = Variable(var.name, var.current, var.multi, True, ".*", var.options)
            variables[spec.name] = var
        lines.append("")
        lines.append(f"== {d.title} ({d.uid}, {d.source})")
        for spec in d.variables:
            if spec.query:
                text = expand(spec.query, variables, time_range)
                lines.append(f"  variable ${spec.name}: {text}")
        for r in rendered_queries(d, variables, time_range, ds.min_interval):
            lines.append(f"  {r.label.split(') ', 1)[1]}:")
            lines.append(f"    {r.text}")
    return "\n".join(lines)
