"""Read the dashboards folder: every dashboard JSON and the provisioned data source.

The folder is the repository's top-level ``dashboards/`` (the Docker image copies the repo);
``--dir`` or ``SHELTERWATCH_DASHBOARDS_DIR`` point elsewhere, e.g. for an installed wheel.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shelterwatch.dashboards.model import Dashboard, DashboardError, parse_dashboard

__all__ = [
    "DATASOURCE_FILE",
    "DatasourceSpec",
    "default_dir",
    "load_dashboards",
    "load_datasource",
]

DATASOURCE_FILE = Path("provisioning/datasources/shelterwatch.yaml")
DASHBOARD_PROVIDER_FILE = Path("provisioning/dashboards/shelterwatch.yaml")
# Defaults for the variables the provisioning file reads. Grafana's provisioning has no
# default syntax, so the compose file sets them for Grafana; `push` falls back to these.
ENV_DEFAULTS: Mapping[str, str] = {
    "SW_INFLUX_URL": "http://influxdb:8086",
    "SW_INFLUX_DATABASE": "shelterwatch",
    "SW_INFLUX_USER": "",
    "SW_INFLUX_PASSWORD": "",
}
_ENV_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class DatasourceSpec:
    """The InfluxDB data source as provisioned, with environment variables resolved."""

    uid: str
    name: str
    url: str
    database: str
    min_interval: str | None
    body: Mapping[str, Any] = field(repr=False)


def default_dir() -> Path:
    env = os.environ.get("SHELTERWATCH_DASHBOARDS_DIR")
    if env:
        return Path(env)
    # shelterwatch/dashboards/load.py → the repository root holds dashboards/.
    return Path(__file__).resolve().parents[2] / "dashboards"


def _check_dir(directory: Path) -> None:
    if not (directory / DATASOURCE_FILE).is_file():
        raise DashboardError(
            f"{directory} is not a dashboards folder (no {DATASOURCE_FILE}); pass --dir with "
            "the repository's dashboards/ folder or set SHELTERWATCH_DASHBOARDS_DIR"
        )


def _expand_env(text: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, ENV_DEFAULTS.get(name, ""))

    return _ENV_REF.sub(sub, text)


def load_datasource(
    directory: Path | None = None, env: Mapping[str, str] | None = None
) -> DatasourceSpec:
    directory = directory or default_dir()
    _check_dir(directory)
    path = directory / DATASOURCE_FILE
    env = os.environ if env is None else env
    try:
        doc = yaml.safe_load(_expand_env(path.read_text(encoding="utf-8"), env))
    except (OSError, yaml.YAMLError) as exc:
        raise DashboardError(f"cannot read the data source file {path}: {exc}") from exc
    sources = doc.get("datasources") if isinstance(doc, Mapping) else None
    if not isinstance(sources, list) or len(sources) != 1 or not isinstance(sources[0], Mapping):
        raise DashboardError(f"{path}: expected exactly one entry under datasources")
    ds: Mapping[str, Any] = sources[0]
    json_data = ds.get("jsonData") or {}
    missing = [k for k in ("uid", "name", "url") if not ds.get(k)]
    if ds.get("type") != "influxdb":
        missing.append("type: influxdb")
    if json_data.get("version", "InfluxQL") != "InfluxQL":
        missing.append("jsonData.version: InfluxQL")
    database = str(json_data.get("dbName") or ds.get("database") or "")
    if not database:
        missing.append("jsonData.dbName")
    if missing:
        raise DashboardError(f"{path}: the data source needs {', '.join(missing)}")
    interval = json_data.get("timeInterval")
    return DatasourceSpec(
        uid=str(ds["uid"]),
        name=str(ds["name"]),
        url=str(ds["url"]),
        database=database,
        min_interval=str(interval) if interval else None,
        body=ds,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DashboardError(f"cannot read dashboard {path}: {exc}") from exc


def load_dashboards(directory: Path | None = None) -> list[Dashboard]:
    """Every ``*.json`` in the folder, checked; uids must be unique across files."""
    directory = directory or default_dir()
    _check_dir(directory)
    ds = load_datasource(directory, env={})
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DashboardError(f"no dashboard JSON files in {directory}")
    dashboards: list[Dashboard] = []
    errors: list[str] = []
    for path in files:
        try:
            dashboards.append(parse_dashboard(_read_json(path), path.name, ds.uid))
        except DashboardError as exc:
            errors.append(str(exc))
    seen: dict[str, str] = {}
    for d in dashboards:
        if d.uid in seen:
            errors.append(f"uid {d.uid!r} is used by both {seen[d.uid]} and {d.source}")
        seen[d.uid] = d.source
    if errors:
        raise DashboardError("\n".join(errors))
    return dashboards
