"""The dashboard files: they load, their uids are unique and stable, every panel queries the
provisioned data source, and every variable a query uses is defined."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from shelterwatch.dashboards import load_dashboards, load_datasource
from shelterwatch.dashboards.load import DASHBOARD_PROVIDER_FILE, default_dir
from shelterwatch.dashboards.macros import variable_names
from shelterwatch.dashboards.model import BUILTIN_MACROS, DashboardError, parse_dashboard

DIR = default_dir()
FILES = sorted(DIR.glob("*.json"))
# The uids that links and bookmarks point at: renaming one breaks them.
EXPECTED_UIDS = {
    "sw-fleet-overview",
    "sw-shelter-detail",
    "sw-sirens",
    "sw-equipment-degradation",
}


def test_every_dashboard_loads_with_unique_stable_uids() -> None:
    dashboards = load_dashboards(DIR)
    assert len(dashboards) == len(FILES) >= 4
    uids = [d.uid for d in dashboards]
    assert len(set(uids)) == len(uids)
    assert set(uids) == EXPECTED_UIDS


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_panel_queries_the_provisioned_datasource(path: Path) -> None:
    ds = load_datasource(DIR, env={})
    doc = json.loads(path.read_text(encoding="utf-8"))
    d = parse_dashboard(doc, path.name, ds.uid)
    assert d.data_panels, "a dashboard without data panels"
    for panel in d.data_panels:
        assert panel.datasource_uid == ds.uid, panel.title
        assert panel.queries, f"panel {panel.title!r} has no query"
        for q in panel.queries:
            assert q.datasource_uid == ds.uid
            assert q.text.upper().startswith(("SELECT", "SHOW"))
    defined = {v.name for v in d.variables}
    assert {"district", "site"} <= defined
    for panel in d.data_panels:
        for q in panel.queries:
            assert set(variable_names(q.text)) <= defined | BUILTIN_MACROS, (panel.title, q.text)
    for v in d.variables:
        if v.type == "query":
            assert v.query is not None and v.query.startswith("SHOW TAG VALUES")
            assert v.datasource_uid == ds.uid


def test_panels_with_thresholds_from_the_domain() -> None:
    by_uid = {d.uid: d for d in load_dashboards(DIR)}
    panels = {p["title"]: p for p in by_uid["sw-shelter-detail"].raw["panels"]}
    steps = panels["Overpressure"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 30, 50]
    steps = panels["CO₂"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 2.5 in [s["value"] for s in steps]
    steps = panels["Water tank level"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 95 in [s["value"] for s in steps]


def test_provisioning_files() -> None:
    ds = load_datasource(DIR, env={"SW_INFLUX_URL": "http://db:8086"})
    assert ds.url == "http://db:8086"
    assert ds.database == "shelterwatch"  # the default when the variable is unset
    assert ds.body["jsonData"]["version"] == "InfluxQL"
    provider = yaml.safe_load((DIR / DASHBOARD_PROVIDER_FILE).read_text(encoding="utf-8"))
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"].startswith("/var/lib/grafana/dashboards")


def _doc() -> dict[str, object]:
    doc: dict[str, object] = json.loads(FILES[0].read_text(encoding="utf-8"))
    return doc


def test_a_broken_dashboard_names_each_problem() -> None:
    doc = _doc()
    bad = copy.deepcopy(doc)
    panels = bad["panels"]
    assert isinstance(panels, list)
    data = [p for p in panels if p.get("targets")]
    data[0]["datasource"] = {"type": "influxdb", "uid": "other"}
    data[1]["targets"][0]["query"] = 'SELECT last("x") FROM "m" WHERE "site" =~ /^$nowhere$/'
    data[2]["targets"] = []
    bad["uid"] = "Not A Slug"
    with pytest.raises(DashboardError) as info:
        parse_dashboard(bad, "bad.json", "shelterwatch-influx")
    text = str(info.value)
    assert "uid 'Not A Slug'" in text
    assert "datasource uid 'other'" in text
    assert "$nowhere" in text
    assert "no query" in text


def test_duplicate_uids_across_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "provisioning").mkdir()
    for sub in ("datasources", "dashboards"):
        src = DIR / "provisioning" / sub
        (tmp_path / "provisioning" / sub).mkdir()
        for f in src.iterdir():
            (tmp_path / "provisioning" / sub / f.name).write_text(f.read_text())
    text = FILES[0].read_text(encoding="utf-8")
    (tmp_path / "a.json").write_text(text)
    (tmp_path / "b.json").write_text(text)
    with pytest.raises(DashboardError, match=r"is used by both a\.json and b\.json"):
        load_dashboards(tmp_path)


def test_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DashboardError, match="--dir"):
        load_dashboards(tmp_path)


def test_check_command_prints_every_expanded_query() -> None:
    from typer.testing import CliRunner

    from shelterwatch.cli.main import app

    result = CliRunner().invoke(app, ["dashboards", "check", "--site", "shelter-01"])
    assert result.exit_code == 0, result.output
    assert "4 dashboard(s)" in result.output
    assert '"site" =~ /^(shelter-01)$/' in result.output
    assert "$timeFilter" not in result.output and "$__interval" not in result.output
    queries = sum(len(p.queries) for d in load_dashboards(DIR) for p in d.data_panels)
    assert result.output.count("SELECT ") >= queries
