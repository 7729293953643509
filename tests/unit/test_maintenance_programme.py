"""Maintenance programmes as data: the built-in Zhejiang periods, and errors that name the
file and the key (control/maintenance/programme.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.maintenance import ProgrammeError, load_programme
from control.maintenance.programme import BUILTIN


def test_the_builtin_programme_follows_the_zhejiang_periods() -> None:
    p = load_programme()
    periods = {i.key: i.period_days for i in p.items}
    # domain §4 (Zhejiang DBJ33/T1309-2023)
    assert periods["door-cycle"] == 30
    assert periods["fan-run"] == 30
    assert periods["fan-performance"] == 365
    assert periods["gauge-calibration"] == 182
    assert periods["water-tanks"] == 91
    assert periods["filter-absorber"] == 730
    assert periods["generator"] == 182
    detectors = {i.key: i.evidence.detector for i in p.items if i.evidence}
    assert detectors == {
        "door-cycle": "door_cycle",
        "fan-run": "fan_run",
        "generator": "generator_start",
    }
    fan = p.item("fan-run")
    assert fan is not None and fan.evidence is not None and fan.evidence.min_run_s == 3600
    assert p.item_for_rule("filter_clogging") == p.item("filter-absorber")
    assert all(i.title_zh and i.title_en for i in p.items)


def test_a_region_loads_its_own_programme(tmp_path: Path) -> None:
    path = tmp_path / "qingdao.yaml"
    path.write_text(
        "name: qingdao\ntitle: Qingdao\nlead_days: 3\nitems:\n"
        "  - {key: door-cycle, equipment: door, title_zh: 门, title_en: Doors, period_days: 14,"
        " evidence: {detector: door_cycle}}\n",
        encoding="utf-8",
    )
    p = load_programme(path)
    assert (p.name, p.lead_days, [i.period_days for i in p.items]) == ("qingdao", 3, [14])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: r\ntitle: R\nitems:\n  - {key: a, equipment: door, title_zh: a, title_en: a,"
            " period_days: 0}\n",
            "r.yaml: items[0].period_days: Input should be greater than or equal to 1",
        ),
        (
            "name: r\ntitle: R\nitems:\n  - {key: a, equipment: door, title_zh: a, title_en: a,"
            " period_days: 30, evidence: {detector: smoke}}\n",
            "r.yaml: items[0].evidence.detector: Input should be",
        ),
        (
            "name: r\ntitle: R\nitems:\n  - {key: a, equipment: door, title_zh: a, title_en: a,"
            " period_days: 30}\n  - {key: a, equipment: fan, title_zh: b, title_en: b,"
            " period_days: 30}\n",
            "r.yaml: items[1].key: 'a' appears twice",
        ),
        ("name: r\ntitle: R\nitems: []\n", "r.yaml: items: List should have at least 1 item"),
        ("name: r\ntitle: R\nitems:\n  - {key: a\n", "not valid YAML"),
        ("- a list\n", "a programme is a mapping"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgrammeError, match=None) as info:
        load_programme(path)
    assert message in str(info.value)


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ProgrammeError, match="cannot read"):
        load_programme(BUILTIN.parent / "nowhere.yaml")
