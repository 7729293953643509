"""The parts of a Grafana dashboard JSON that the tooling checks and expands.

``parse_dashboard`` turns the JSON into frozen dataclasses and collects every problem it finds
(each naming the file, the panel and what to change) before raising one DashboardError, so a
broken file is fixed in one pass. Pure logic: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shelterwatch.dashboards.macros import variable_names
from shelterwatch.errors import ConfigError

__all__ = [
    "BUILTIN_MACROS",
    "DATA_FREE_PANELS",
    "Dashboard",
    "DashboardError",
    "Panel",
    "Query",
    "TemplateVar",
    "parse_dashboard",
]

# What Grafana or the InfluxDB plugin replaces without a dashboard variable.
BUILTIN_MACROS = frozenset({"timeFilter", "interval", "__interval", "__interval_ms"})
# Panels that show no query result.
DATA_FREE_PANELS = frozenset({"text", "row", "news", "dashlist"})
# Grafana's uid limit is 40 characters; a slug keeps URLs and file names readable.
_UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_RESULT_FORMATS = frozenset({"time_series", "table"})
# A panel's width in Grafana grid columns (24 across) times the pixels of a column on a
# 1920-pixel screen: Grafana's default max data points is the panel's width in pixels.
_PIXELS_PER_COLUMN = 80


class DashboardError(ConfigError):
    """A dashboard file that Grafana would load but that breaks a rule of ours, or does not
    load at all. The message lists every problem found."""


@dataclass(frozen=True)
class Query:
    ref_id: str
    text: str
    result_format: str
    datasource_uid: str


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    type: str
    queries: tuple[Query, ...]
    datasource_uid: str | None
    width: int
    max_data_points: int | None
    min_interval: str | None

    @property
    def resolution(self) -> int:
        """What Grafana divides the range by for ``$__interval``."""
        return self.max_data_points or self.width * _PIXELS_PER_COLUMN


@dataclass(frozen=True)
class TemplateVar:
    name: str
    type: str
    query: str | None
    datasource_uid: str | None
    multi: bool
    include_all: bool
    all_value: str | None
    custom_options: tuple[str, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    source: str
    panels: tuple[Panel, ...]
    variables: tuple[TemplateVar, ...]
    annotations: tuple[Query, ...]
    raw: Mapping[str, Any]

    def variable(self, name: str) -> TemplateVar:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"dashboard {self.uid} has no variable {name!r}")

    @property
    def data_panels(self) -> tuple[Panel, ...]:
        return tuple(p for p in self.panels if p.type not in DATA_FREE_PANELS)


def _walk_panels(panels: Sequence[Any]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        if not isinstance(panel, Mapping):
            continue
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from _walk_panels(panel.get("panels") or [])


def _ds_uid(node: Mapping[str, Any]) -> str | None:
    ds = node.get("datasource")
    if isinstance(ds, Mapping) and isinstance(ds.get("uid"), str):
        return str(ds["uid"])
    return None


def _query(
    node: Mapping[str, Any], where: str, datasource_uid: str, problems: list[str]
) -> Query | None:
    ref = str(node.get("refId", "?"))
    text = node.get("query")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where} query {ref}: no InfluxQL text in 'query'")
        return None
    if node.get("rawQuery") is not True:
        problems.append(f'{where} query {ref}: set "rawQuery": true (we keep raw InfluxQL only)')
    fmt = str(node.get("resultFormat", "time_series"))
    if fmt not in _RESULT_FORMATS:
        problems.append(f"{where} query {ref}: resultFormat {fmt!r} is not time_series or table")
    uid = _ds_uid(node) or datasource_uid
    if uid != datasource_uid:
        problems.append(f"{where} query {ref}: datasource uid {uid!r}, expected {datasource_uid!r}")
    return Query(ref, text.strip(), fmt, uid)


def _panel(raw: Mapping[str, Any], source: str, ds_uid: str, problems: list[str]) -> Panel:
    title = str(raw.get("title") or "")
    ptype = str(raw.get("type") or "")
    where = f"{source}: panel {raw.get('id')} {title!r}"
    if not title:
        problems.append(f"{where}: give the panel a title")
    queries: list[Query] = []
    panel_uid = _ds_uid(raw)
    if ptype not in DATA_FREE_PANELS:
        if panel_uid != ds_uid:
            problems.append(
                f"{where}: datasource uid {panel_uid!r}; set datasource "
                f'{{"type": "influxdb", "uid": "{ds_uid}"}}'
            )
        targets = raw.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query (targets is empty)")
        for target in targets:
            if isinstance(target, Mapping):
                q = _query(target, where, ds_uid, problems)
                if q is not None:
                    queries.append(q)
    grid = raw.get("gridPos") or {}
    mdp = raw.get("maxDataPoints")
    interval = raw.get("interval")
    return Panel(
        id=int(raw.get("id") or 0),
        title=title,
        type=ptype,
        queries=tuple(queries),
        datasource_uid=panel_uid,
        width=int(grid.get("w") or 24),
        max_data_points=int(mdp) if isinstance(mdp, int | float) and mdp > 0 else None,
        min_interval=str(interval) if interval else None,
    )


def _variable(raw: Mapping[str, Any], source: str, ds_uid: str, problems: list[str]) -> TemplateVar:
    name = str(raw.get("name") or "")
    vtype = str(raw.get("type") or "")
    where = f"{source}: variable {name!r}"
    query = raw.get("query")
    text: str | None = None
    if vtype == "query":
        if isinstance(query, Mapping):
            query = query.get("query")
        if not isinstance(query, str) or not query.strip().upper().startswith("SHOW TAG VALUES"):
            problems.append(f"{where}: a query variable must be an InfluxQL SHOW TAG VALUES query")
        else:
            text = query.strip()
        if _ds_uid(raw) != ds_uid:
            problems.append(f"{where}: datasource uid {_ds_uid(raw)!r}, expected {ds_uid!r}")
    options: list[str] = []
    if vtype == "custom" and isinstance(query, str):
        options = [o.strip() for o in query.split(",") if o.strip()]
    all_value = raw.get("allValue")
    return TemplateVar(
        name=name,
        type=vtype,
        query=text,
        datasource_uid=_ds_uid(raw),
        multi=bool(raw.get("multi")),
        include_all=bool(raw.get("includeAll")),
        all_value=str(all_value) if all_value else None,
        custom_options=tuple(options),
    )


def _check_references(
    where: str, text: str, defined: set[str], problems: list[str], label: str
) -> None:
    for name in variable_names(text):
        if name not in defined and name not in BUILTIN_MACROS:
            problems.append(f"{where}: {label} uses ${name}, which is no variable of the dashboard")


def parse_dashboard(doc: Any, source: str, datasource_uid: str) -> Dashboard:
    """Check one dashboard document and return its model; raise DashboardError listing
    every problem."""
    if not isinstance(doc, Mapping):
        raise DashboardError(f"{source}: a dashboard file holds one JSON object")
    problems: list[str] = []
    uid = str(doc.get("uid") or "")
    if not _UID.match(uid):
        problems.append(
            f"{source}: uid {uid!r} must be a stable slug (a-z, 0-9, -; at most 40); "
            "Grafana finds the dashboard to overwrite by it"
        )
    if doc.get("id") not in (None,):
        problems.append(f'{source}: set "id": null; Grafana assigns ids, we key on uid')
    title = str(doc.get("title") or "")
    if not title:
        problems.append(f"{source}: the dashboard needs a title")
    templating = doc.get("templating") or {}
    raw_vars = templating.get("list") if isinstance(templating, Mapping) else None
    variables = [
        _variable(v, source, datasource_uid, problems)
        for v in (raw_vars or [])
        if isinstance(v, Mapping)
    ]
    names = [v.name for v in variables]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{source}: variable {dup!r} is defined more than once")
    defined = set(names)
    panels = [
        _panel(p, source, datasource_uid, problems) for p in _walk_panels(doc.get("panels") or [])
    ]
    ids = [p.id for p in panels]
    for dup_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"{source}: panel id {dup_id} is used more than once")
    for panel in panels:
        for q in panel.queries:
            where = f"{source}: panel {panel.id} {panel.title!r} query {q.ref_id}"
            _check_references(where, q.text, defined, problems, "the query")
    for v in variables:
        if v.query:
            _check_references(
                f"{source}: variable {v.name!r}", v.query, defined, problems, "its query"
            )
    annotations: list[Query] = []
    raw_ann = doc.get("annotations") or {}
    for ann in raw_ann.get("list", []) if isinstance(raw_ann, Mapping) else []:
        if not isinstance(ann, Mapping) or (ann.get("datasource") or {}).get("type") != "influxdb":
            continue  # Grafana's built-in annotations have no InfluxQL
        where = f"{source}: annotation {ann.get('name')!r}"
        node = {**ann, "refId": ann.get("name", "annotation")}
        ann_query = _query(node, where, datasource_uid, problems)
        if ann_query is not None:
            annotations.append(ann_query)
            _check_references(where, ann_query.text, defined, problems, "the query")
    if problems:
        raise DashboardError(
            f"{len(problems)} problem(s) in dashboard {source}:\n  " + "\n  ".join(problems)
        )
    return Dashboard(
        uid=uid,
        title=title,
        source=source,
        panels=tuple(panels),
        variables=tuple(variables),
        annotations=tuple(annotations),
        raw=doc,
    )
