"""Every Grafana panel's query returns data from InfluxDB fed by the simulator, and `push`
sends what Grafana's HTTP API expects.

The telemetry path runs for real: simulated fleet → gateways → Mosquitto → collector (alert
engine on, time compressed as in test_alert_scenarios) → InfluxDB. Fault scenarios make the
data the degradation and alert panels need. The readiness panels read what the control
service's maintenance sweep records: the test runs that sweep (MaintenanceService.sweep, the
code the periodic job and the API run) against the same InfluxDB. Then every panel query (and
annotation) is expanded the way Grafana expands it: variables from their own SHOW TAG VALUES
queries with "All" selected, each site alone, each district alone, and a relative range; each
must return a series with at least one non-null value. An empty panel fails the test, named with its
query. With one district selected, no panel may show a site of another district.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from alert_rules_fast import fast_rules
from control_helpers import control_settings
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from control.db import Database
from control.maintenance import MaintenanceService
from firmware_sim import Fleet, FleetSpec
from shelterwatch.dashboards import load_dashboards, load_datasource
from shelterwatch.dashboards.check import Rendered, rendered_queries, to_variable
from shelterwatch.dashboards.macros import ALL, MacroError, TimeRange, Variable, expand
from shelterwatch.dashboards.model import Dashboard
from shelterwatch.dashboards.push import PushError, connect, push
from shelterwatch.errors import StoreRejected
from shelterwatch.store.influx import InfluxStore

pytestmark = pytest.mark.integration

FACTOR = 60.0  # rule time: a minute becomes a second
PER_RULE = {"filter_clogging": 7200.0}  # hourly trend samples every 0.5 s
POLL_S = 0.25
SNAPSHOT_S = 1.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _has_value(result: Mapping[str, Any]) -> bool:
    for series in result.get("series", []):
        for row in series.get("values", []):
            # Column 0 is time (or the key of SHOW TAG VALUES); any other non-null counts.
            if any(v is not None for v in row[1:]):
                return True
    return False


async def _options(store: InfluxStore, text: str) -> list[str]:
    (result,) = await store.query(text)
    values = {row[1] for s in result.get("series", []) for row in s.get("values", [])}
    return sorted(str(v) for v in values)


async def _variables(
    store: InfluxStore,
    dashboard: Dashboard,
    time_range: TimeRange,
    chosen: Mapping[str, list[str]] | None = None,
) -> dict[str, Variable]:
    """Each variable's options from its own query (in order), and its selection."""
    out: dict[str, Variable] = {}
    for spec in dashboard.variables:
        options: list[str] = []
        if spec.query:
            try:
                options = await _options(store, expand(spec.query, out, time_range))
            except MacroError:
                options = []  # a variable above it has no values yet
        out[spec.name] = to_variable(spec, (chosen or {}).get(spec.name), options)
    return out


def _sites_in(result: Mapping[str, Any]) -> set[str]:
    """The sites a query's answer names: as a series tag, or as a column."""
    sites: set[str] = set()
    for series in result.get("series", []):
        if "site" in series.get("tags", {}):
            sites.add(series["tags"]["site"])
        columns = series.get("columns", [])
        if "site" in columns:
            at = columns.index("site")
            sites.update(str(row[at]) for row in series.get("values", []) if row[at])
    return sites


async def _empty(store: InfluxStore, rendered: list[Rendered]) -> list[str]:
    problems = []
    for r in rendered:
        try:
            results = await store.query(r.text)
        except StoreRejected as exc:
            problems.append(f"{r.label}: InfluxDB refused it: {exc}\n    {r.text}")
            continue
        if not _has_value(results[0]):
            problems.append(f"{r.label}: no data\n    {r.text}")
    return problems


@dataclass
class Run:
    store: InfluxStore
    dashboards: list[Dashboard]
    min_interval: str | None
    started_ms: int

    def range(self) -> TimeRange:
        return TimeRange(self.started_ms - 1000, _now_ms() + 1000)

    async def all_selected(self, *, relative: bool = False) -> list[str]:
        problems: list[str] = []
        tr = self.range()
        if relative:
            tr = TimeRange(tr.to_ms - 5 * 60_000, tr.to_ms, "now-5m", "now")
        for d in self.dashboards:
            variables = await _variables(self.store, d, tr)
            for name, var in variables.items():
                if not var.options and not var.all_value:
                    problems.append(f"{d.title}: variable ${name} has no values")
            if problems:
                continue
            rendered = rendered_queries(d, variables, tr, self.min_interval, relative_time=relative)
            problems += await _empty(self.store, rendered)
        return problems


async def test_every_panel_query_returns_data(
    mosquitto: MosquittoServer, influx_store: InfluxStore, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    rules = tmp_path / "rules.yaml"
    fast_rules(rules, FACTOR, PER_RULE)
    collector = collector_for(
        influx_store,
        mqtt,
        client_id=f"c-{uuid.uuid4().hex[:8]}",
        alerts={
            "enabled": True,
            "rules_path": str(rules),
            "state_path": str(tmp_path / "alert-state.db"),
            "repeat_critical_s": 900 / FACTOR,
            "tick_s": 0.2,
        },
    )
    ds = load_datasource(env={})
    run = Run(influx_store, load_dashboards(), ds.min_interval, _now_ms())
    fleet = Fleet(FleetSpec(shelters=2, sirens=2, relay_sirens=1, tick_s=0.2, seed=5))
    control = control_settings(f"sqlite:///{tmp_path / 'control.db'}", "sqlite:///unused.db")
    async with (
        Database(control.database_url) as db,
        fleet,
        running(collector.run()),
    ):
        await db.upgrade()
        maintenance = MaintenanceService(control, db, influx_store)
        await wait_until(collector.subscribed.is_set, 10, "the collector subscribed")
        # The data the degradation, siren and alert panels show.
        await fleet.fault("shelter-01", "filter_clogging", rate_pa_s=3.0)
        await fleet.fault("shelter-02", "comm_loss", device="water")
        await fleet.fault("siren-02", "siren_driver_fault")
        await fleet.fault("siren-03", "siren_battery_decay", rate_v_s=0.5)
        fleet.sirens["siren-03"].ac_power = False  # a post on battery
        fleet.shelters["shelter-01"].apply_write("door", "command", "close")  # one door cycle
        fleet.sirens["siren-01"].apply_write("siren", "command", "silent_test")
        gateways = gateways_for(
            fleet, mqtt, interval_s=POLL_S, outbox_dir=tmp_path, snapshot_interval_s=SNAPSHOT_S
        )
        async with running(*(g.run() for g in gateways)):
            last: list[str] = []

            async def every_panel_has_data() -> bool:
                nonlocal last
                # Each site's readiness, recorded as the control service records it.
                await maintenance.sweep(actor="test")
                last = await run.all_selected()
                return not last

            try:
                await wait_until(every_panel_has_data, 40, "data in every panel", interval=1.0)
            except AssertionError:
                pytest.fail(
                    f"{len(last)} panel quer(ies) returned no data:\n" + "\n".join(last),
                    pytrace=False,
                )

    # With the data in place: a relative range (Grafana's older browser-side form) works too,
    assert await run.all_selected(relative=True) == []
    # the readiness panels list every site the store knows, each with its score,
    (scores,) = await influx_store.query(
        'SELECT last("score") AS "score" FROM "readiness" GROUP BY "site"'
    )
    assert _sites_in(scores) == set(await influx_store.sites())
    assert all(0 <= row[1] <= 100 for s in scores["series"] for row in s["values"])
    # and each site selected alone: every query runs, and returns data for some site.
    tr = run.range()
    for d in run.dashboards:
        all_vars = await _variables(influx_store, d, tr)
        site_options = all_vars["site"].options
        answered: dict[str, bool] = {}
        for site in site_options:
            variables = await _variables(influx_store, d, tr, {"site": [site]})
            rendered = rendered_queries(d, variables, tr, run.min_interval)
            empty = await _empty(influx_store, rendered)
            assert not [p for p in empty if "refused" in p], empty
            for r in rendered:
                answered[r.label] = answered.get(r.label, False) or not any(
                    p.startswith(r.label + ":") for p in empty
                )
        assert all(answered.values()), [k for k, v in answered.items() if not v]

    # And each district selected alone: the district variable lists the gateways' districts,
    # `site` narrows to that district's sites, every query runs and returns data for some
    # district, each district gets data, and no panel shows a site of another district.
    district_of = {site: fleet.district(site) for site in fleet.sites}
    districts = sorted({d for d in district_of.values() if d})
    assert districts == ["shangcheng", "xihu"]
    for d in run.dashboards:
        all_vars = await _variables(influx_store, d, tr)
        assert all_vars["district"].options == districts, d.title
        answered = {}
        for district in districts:
            own = {site for site, of in district_of.items() if of == district}
            variables = await _variables(influx_store, d, tr, {"district": [district]})
            sites = variables["site"].options
            assert sites and set(sites) <= own, (d.title, district, sites)
            assert set(sites) == own & set(all_vars["site"].options), (d.title, district)
            rendered = rendered_queries(d, variables, tr, run.min_interval)
            with_data = 0
            shown: set[str] = set()
            for r in rendered:
                try:
                    (result,) = await influx_store.query(r.text)
                except StoreRejected as exc:
                    pytest.fail(f"{r.label} with district {district}: refused: {exc}")
                has = _has_value(result)
                with_data += has
                answered[r.label] = answered.get(r.label, False) or has
                foreign = _sites_in(result) - own
                assert not foreign, f"{r.label}, district {district}: shows {foreign}\n{r.text}"
                shown |= _sites_in(result)
            assert with_data, f"{d.title}: no panel has data for district {district}"
            # The site-listing panels (tables, per-site series) list this district's sites.
            assert shown and shown <= own, (d.title, district, shown)
        assert all(answered.values()), [k for k, v in answered.items() if not v]


# -- push against a fake Grafana -----------------------------------------------------------


@dataclass
class FakeGrafana:
    """Just the endpoints grafana-client calls for `push`, with what it received."""

    token: str = "sa-token"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)


def _handler(fake: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((method, url.path, body))
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                self._reply(401, {"message": "invalid API key"})
                return
            parts = url.path.strip("/").split("/")
            match method, parts:
                case "GET", ["api", "folders", uid]:
                    found = fake.folders.get(uid)
                    self._reply(200, found) if found else self._reply(404, {"message": "nf"})
                case "POST", ["api", "folders"]:
                    fake.folders[body["uid"]] = body
                    self._reply(200, {"uid": body["uid"], "title": body["title"], "id": 7})
                case "GET", ["api", "datasources", "uid", uid]:
                    found = fake.datasources.get(uid)
                    self._reply(200, found) if found else self._reply(404, {"message": "nf"})
                case "POST", ["api", "datasources"]:
                    fake.datasources[body["uid"]] = body
                    self._reply(200, {"datasource": body, "id": 3, "message": "added"})
                case "PUT", ["api", "datasources", "uid", uid]:
                    fake.datasources[uid] = body
                    self._reply(200, {"datasource": body, "message": "updated"})
                case "GET", ["api", "dashboards", "uid", uid]:
                    found = fake.dashboards.get(uid)
                    self._reply(200, found) if found else self._reply(404, {"message": "nf"})
                case "POST", ["api", "dashboards", "db"]:
                    uid = body["dashboard"]["uid"]
                    version = fake.dashboards.get(uid, {}).get("version", 0) + 1
                    fake.dashboards[uid] = body | {"version": version}
                    self._reply(
                        200,
                        {"status": "success", "uid": uid, "url": f"/d/{uid}", "version": version},
                    )
                case _:
                    self._reply(404, {"message": f"not faked: {method} {url.path}"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@pytest.fixture
def fake_grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_push_creates_then_overwrites_by_uid(fake_grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = fake_grafana
    dashboards = load_dashboards()
    ds = load_datasource(env={"SW_INFLUX_URL": "http://tsdb:8086", "SW_INFLUX_PASSWORD": "pw"})
    api = connect(url, token=fake.token)

    first = push(api, dashboards, ds)
    assert (
        first.lines[0].startswith("datasource shelterwatch-influx") and "created" in first.lines[0]
    )
    assert "folder shelterwatch (Shelterwatch): created" in first.lines
    assert sum("created, version 1" in line for line in first.lines) == len(dashboards)

    sent = fake.datasources["shelterwatch-influx"]
    assert sent["url"] == "http://tsdb:8086"
    assert sent["type"] == "influxdb" and sent["isDefault"] is False
    assert sent["jsonData"]["dbName"] == "shelterwatch"
    assert sent["jsonData"]["version"] == "InfluxQL"
    assert sent["secureJsonData"] == {"password": "pw"}
    assert fake.folders["shelterwatch"]["title"] == "Shelterwatch"
    assert set(fake.dashboards) == {d.uid for d in dashboards}
    for d in dashboards:
        saved = fake.dashboards[d.uid]
        assert saved["overwrite"] is True
        assert saved["folderUid"] == "shelterwatch"
        assert saved["dashboard"]["id"] is None
        assert saved["dashboard"]["panels"] == d.raw["panels"]

    second = push(api, dashboards, ds)
    assert "updated" in second.lines[0]
    assert "folder shelterwatch (Shelterwatch): exists" in second.lines
    assert sum("updated, version 2" in line for line in second.lines) == len(dashboards)
    assert [r for r in fake.requests if r[0] == "PUT"]  # the data source was updated in place


def test_push_with_a_bad_token_says_what_to_check(fake_grafana: tuple[FakeGrafana, str]) -> None:
    _, url = fake_grafana
    api = connect(url, token="wrong")
    with pytest.raises(PushError, match=r"401.*--token"):
        push(api, load_dashboards(), load_datasource(env={}))


def test_push_to_nothing_says_so() -> None:
    api = connect("http://127.0.0.1:9", token="t")
    with pytest.raises(PushError, match="Grafana"):
        push(api, load_dashboards()[:1], load_datasource(env={}), with_datasource=False)


def test_all_stands_for_every_option() -> None:
    # The test above relies on this: "All" without options cannot be expanded.
    var = Variable("site", [ALL], multi=True, include_all=True, options=["a", "b"])
    assert expand("/^$site$/", {"site": var}, TimeRange(0, 1)) == "/^(a|b)$/"
