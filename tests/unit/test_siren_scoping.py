"""How an activation is shown to a caller whose area holds only some of its targets."""

from __future__ import annotations

from area_helpers import sample_tree

from control.areas import Scope
from control.db import SirenTarget
from control.sirens.scoping import HIDDEN, Redactor, reach_refusal


def _target(siren: str, site: str, gateway: str, name: str) -> SirenTarget:
    return SirenTarget(siren=siren, name=name, site=site, gateway=gateway, device=f"ctl-{siren}")


TARGETS = [
    _target("sr-x1", "site-x1", "gw-x1", "西湖一号"),
    _target("sr-b1", "site-b1", "gw-b1", "滨江一号"),
]


def test_a_county_reads_texts_with_its_neighbours_names_blotted() -> None:
    redactor = Redactor(Scope(sample_tree(), "hz-xihu"), TARGETS)
    assert ([t.siren for t in redactor.shown], redactor.hidden) == (["sr-x1"], 1)
    text = "gateway gw-b1 refused ctl-sr-b1 (滨江一号 at site-b1); gw-x1 took sr-x1"
    assert redactor.text(text) == (
        f"gateway {HIDDEN} refused {HIDDEN} ({HIDDEN} at {HIDDEN}); gw-x1 took sr-x1"
    )
    # Whole words only: an id inside a longer one of the county's is left alone.
    assert redactor.text("sr-b10 and gw-b1x") == "sr-b10 and gw-b1x"
    assert redactor.actor("gateway:gw-b1") is None
    assert redactor.actor("gateway:gw-x1") == "gateway:gw-x1"
    assert redactor.actor("commander.hz") == "commander.hz"


def test_the_city_and_the_province_see_it_whole() -> None:
    for area in ("hz", "zj"):
        redactor = Redactor(Scope(sample_tree(), area), TARGETS)
        assert not redactor.partial
        assert redactor.text("gw-b1 refused") == "gw-b1 refused"


def test_a_refusal_counts_what_lies_outside_and_names_the_common_parent() -> None:
    scope = Scope(sample_tree(), "hz-xihu")
    refusal = reach_refusal(scope, ["site-x1", "site-b1"], "groups hz-city reach")
    assert str(refusal) == (
        "1 of the 2 sirens that groups hz-city reach lie outside your area (hz-xihu): "
        "a user of area hz must act on them"
    )
    across_cities = reach_refusal(scope, ["site-x1", "site-n1"], "groups p reach")
    assert "a user of area zj" in str(across_cities)
