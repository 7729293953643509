"""Conversion plans: the built-in ones load, errors name the file and the key, cycles are
refused, overrides replace and add steps, and the content hash follows the content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from control.conversions.errors import PlanError
from control.conversions.plans import load_catalogue, topological

STEP = {"kind": "manual", "title_zh": "步骤", "title_en": "Step"}


def _plan(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "direction": "to_wartime",
        "title_zh": "测试",
        "title_en": "Test",
        "steps": steps,
    } | extra


def _write(tmp_path: Path, doc: dict[str, Any], file: str = "site.yaml") -> Path:
    (tmp_path / file).write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return tmp_path


def test_the_built_in_plans_load_as_a_checklist() -> None:
    catalogue = load_catalogue()
    wartime = catalogue.for_site("shelter-01", "to_wartime")
    assert wartime.plan.name == "shelter-to-wartime" and len(wartime.hash) == 64
    order = [s.id for s in topological(wartime.plan.steps)]
    assert order.index("close-protective-door") < order.index("ventilation-isolated")
    assert order.index("ventilation-isolated") < order.index("ventilation-filtered")
    assert {s.kind for s in wartime.plan.steps} == {"automated", "verified", "manual"}
    assert catalogue.for_site("x", "to_peacetime").plan.name == "shelter-to-peacetime"


def test_a_cycle_is_refused_naming_the_file(tmp_path: Path) -> None:
    steps = [STEP | {"id": "a", "after": ["b"]}, STEP | {"id": "b", "after": ["a"]}]
    with pytest.raises(PlanError, match=r"site.yaml: steps: the dependencies form a cycle"):
        load_catalogue(_write(tmp_path, _plan("looping", steps)))


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        ([STEP | {"id": "a", "after": ["nope"]}], r"site.yaml: steps\[0\]\.after: unknown step"),
        ([STEP | {"id": "a"}, STEP | {"id": "a"}], r"steps\[1\]\.id: 'a' appears twice"),
        ([STEP | {"id": "a", "kind": "automated"}], r"steps\[0\]: an automated step needs"),
        (
            [STEP | {"id": "a", "kind": "verified", "check": [{"device": "door", "point": "x"}]}],
            r"steps\[0\]\.check\[0\]: give exactly one of eq, ge, le",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, steps: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(PlanError, match=error):
        load_catalogue(_write(tmp_path, _plan("bad", steps)))


def test_a_site_override_replaces_removes_and_adds_steps(tmp_path: Path) -> None:
    override = {
        "name": "shelter-07-to-wartime",
        "extends": "shelter-to-wartime",
        "version": 4,
        "sites": ["shelter-07"],
        "remove": ["fill-water-tanks"],
        "steps": [
            STEP | {"id": "refit-door-sills", "title_en": "Refit the two door sills"},
            STEP | {"id": "seal-window-wells", "after": ["refit-door-sills"]},
        ],
    }
    catalogue = load_catalogue(_write(tmp_path, override))
    plan = catalogue.for_site("shelter-07", "to_wartime")
    ids = [s.id for s in plan.plan.steps]
    assert plan.plan.name == "shelter-07-to-wartime" and plan.plan.version == 4
    assert "fill-water-tanks" not in ids and ids[-1] == "seal-window-wells"
    sills = next(s for s in plan.plan.steps if s.id == "refit-door-sills")
    assert sills.title_en == "Refit the two door sills"
    assert not plan.plan.default
    # Other sites keep the default; the hashes differ with the content.
    default = catalogue.for_site("shelter-01", "to_wartime")
    assert default.plan.name == "shelter-to-wartime" and default.hash != plan.hash


def test_unknown_parent_and_two_defaults_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"site.yaml: extends: 'ghost' is not a known plan"):
        load_catalogue(_write(tmp_path, {"name": "x", "extends": "ghost"}))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(PlanError, match="exactly one plan to_wartime must be the default"):
        load_catalogue(_write(other, _plan("second", [STEP | {"id": "a"}], default=True)))
