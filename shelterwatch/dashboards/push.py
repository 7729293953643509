"""Upload the data source and every dashboard to a running Grafana, overwriting by uid.

Uses grafana-client (its HTTP API over requests): the folder is created if missing, the data
source is updated if its uid exists and created otherwise, and each dashboard is saved with
``overwrite`` so that the uid in the JSON decides which dashboard is replaced. Nothing else
in the Grafana is touched; the pushed data source is never made the default one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from shelterwatch.dashboards.load import DatasourceSpec
from shelterwatch.dashboards.model import Dashboard, DashboardError

__all__ = ["PushError", "PushReport", "connect", "datasource_body", "push"]

log = logging.getLogger(__name__)


class PushError(DashboardError):
    """Grafana refused or could not be reached; the message says which step and why."""


@dataclass
class PushReport:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        log.info("%s", line)
        self.lines.append(line)


def datasource_body(ds: DatasourceSpec) -> dict[str, Any]:
    """The data source as the HTTP API takes it (provisioning-only keys left out)."""
    raw = ds.body
    body: dict[str, Any] = {
        "name": ds.name,
        "uid": ds.uid,
        "type": "influxdb",
        "access": raw.get("access", "proxy"),
        "url": ds.url,
        "user": str(raw.get("user") or ""),
        "basicAuth": False,
        # Pushed into someone's Grafana: never take over their default data source.
        "isDefault": False,
        "jsonData": dict(raw.get("jsonData") or {}),
    }
    secure = {k: v for k, v in (raw.get("secureJsonData") or {}).items() if v}
    if secure:
        body["secureJsonData"] = secure
    return body


def _call(step: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one API call; turn the client's errors into a PushError that names the step."""
    try:
        return fn(*args, **kwargs)
    except GrafanaClientError as exc:
        hint = ""
        if exc.status_code in (401, 403):
            hint = " Check --token (an editor or admin service-account token) or --user/--password."
        raise PushError(
            f"{step}: Grafana answered {exc.status_code}: {exc.message}.{hint}"
        ) from exc
    except GrafanaException as exc:
        raise PushError(f"{step}: {exc.message}") from exc
    except OSError as exc:
        # requests' connection errors are OSErrors; grafana-client lets them through.
        raise PushError(
            f"{step}: cannot reach Grafana ({exc}); check --url and that Grafana is running"
        ) from exc


def _lookup(step: str, fn: Callable[..., Any], *args: Any) -> Any | None:
    """Like _call, but None when Grafana answers 404."""
    try:
        return _call(step, fn, *args)
    except PushError as exc:
        cause = exc.__cause__
        if isinstance(cause, GrafanaClientError) and cause.status_code == 404:
            return None
        raise


def _ensure_folder(api: GrafanaApi, uid: str, title: str, report: PushReport) -> None:
    found = _lookup(f"look up folder {uid}", api.folder.get_folder, uid)
    if found is None:
        _call(f"create folder {title!r}", api.folder.create_folder, title, uid=uid)
        report.add(f"folder {uid} ({title}): created")
    else:
        report.add(f"folder {uid} ({found.get('title', title)}): exists")


def _push_datasource(api: GrafanaApi, ds: DatasourceSpec, report: PushReport) -> None:
    body = datasource_body(ds)
    found = _lookup(f"look up data source {ds.uid}", api.datasource.get_datasource_by_uid, ds.uid)
    if found is None:
        _call(f"create data source {ds.uid}", api.datasource.create_datasource, body)
        report.add(f"datasource {ds.uid} ({ds.name}, {ds.url}, db {ds.database}): created")
    else:
        _call(f"update data source {ds.uid}", api.datasource.update_datasource_by_uid, ds.uid, body)
        report.add(f"datasource {ds.uid} ({ds.name}, {ds.url}, db {ds.database}): updated")


def _push_dashboard(
    api: GrafanaApi, dashboard: Dashboard, folder_uid: str, report: PushReport
) -> None:
    existing = _lookup(
        f"look up dashboard {dashboard.uid}", api.dashboard.get_dashboard, dashboard.uid
    )
    model = dict(dashboard.raw)
    model["id"] = None  # Grafana finds the dashboard by uid; an id would pin another one
    payload = {
        "dashboard": model,
        "folderUid": folder_uid,
        "overwrite": True,
        "message": "shelterwatch dashboards push",
    }
    result: Mapping[str, Any] = _call(
        f"save dashboard {dashboard.uid}", api.dashboard.update_dashboard, payload
    )
    what = "updated" if existing else "created"
    version = result.get("version")
    url = result.get("url", "")
    report.add(
        f"dashboard {dashboard.uid} ({dashboard.title}): {what}"
        + (f", version {version}" if version is not None else "")
        + (f", {url}" if url else "")
    )


def push(
    api: GrafanaApi,
    dashboards: Sequence[Dashboard],
    datasource: DatasourceSpec,
    *,
    folder_uid: str = "shelterwatch",
    folder_title: str = "Shelterwatch",
    with_datasource: bool = True,
) -> PushReport:
    """Push everything; stop at the first refusal (what was done so far is in the log)."""
    report = PushReport()
    if with_datasource:
        _push_datasource(api, datasource, report)
    _ensure_folder(api, folder_uid, folder_title, report)
    for dashboard in dashboards:
        _push_dashboard(api, dashboard, folder_uid, report)
    return report


def connect(
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
) -> GrafanaApi:
    """A client for ``url`` with a service-account token or basic auth."""
    if token and user:
        raise PushError("give either --token or --user/--password, not both")
    credential: str | tuple[str, str] | None = token or ((user, password or "") if user else None)
    api: GrafanaApi = GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)
    return api
