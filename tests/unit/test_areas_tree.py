"""The area tree: building and checking it, files in and out, and the scope it gives."""

from __future__ import annotations

import contextlib

import pytest
from area_helpers import AREAS_YAML, sample_tree
from hypothesis import given
from hypothesis import strategies as st

from control.areas import (
    Area,
    AreaError,
    AreaTree,
    Level,
    Scope,
    dump_csv,
    dump_yaml,
    parse_areas,
)


def test_the_tree_answers_who_covers_what() -> None:
    tree = sample_tree()
    assert tree.root_code() == "zj"
    assert tree.children("hz") == ("hz-binj", "hz-xihu")
    assert tree.ancestors("site-x1") == ["hz-xihu", "hz", "zj"]
    assert tree.covers("hz", "site-b1") and not tree.covers("hz-xihu", "site-b1")
    assert tree.sites_under("hz") == {"site-x1", "site-x2", "site-b1"}
    assert tree.gateways_under("hz-xihu") == {"gw-x1", "gw-x2"}
    assert tree.site_of_gateway("gw-n1") == "site-n1"
    assert tree.lowest_common(["site-x1", "site-x2"]) == "hz-xihu"
    assert tree.lowest_common(["site-x1", "site-b1"]) == "hz"
    assert tree.lowest_common(["site-x1", "site-n1"]) == "zj"
    # A site the tree does not name belongs to the root.
    assert tree.home_of_site("site-unplaced") == "zj"


def test_a_county_scope_sees_its_own_sites_and_nothing_beside() -> None:
    tree = sample_tree()
    county = Scope(tree, "hz-xihu")
    assert county.sites == {"site-x1", "site-x2"}
    assert county.has_site("site-x1") and not county.has_site("site-b1")
    assert not county.has_site("site-unplaced")
    assert county.has_gateway("gw-x2") and not county.has_gateway("gw-n1")
    assert not county.has_gateway("gw-unknown")
    assert not county.has_area("hz") and not county.has_area("hz-binj")
    assert county.outside(["site-x1", "site-b1", "site-n1"]) == ["site-b1", "site-n1"]
    city = Scope(tree, "hz")
    assert city.covers_sites(["site-x1", "site-b1"]) and not city.covers_sites(["site-n1"])
    assert city.needed_area(["site-x1", "site-b1"]) == "hz"
    # The root, no area, and an empty tree all reach everything, placed or not.
    for everywhere in (Scope(tree, "zj"), Scope(tree, None), Scope(AreaTree(), "zj")):
        assert everywhere.unlimited and everywhere.sites is None
        assert everywhere.has_site("site-unplaced") and everywhere.has_gateway("gw-unknown")


@pytest.mark.parametrize(
    ("areas", "fault"),
    [
        (
            [Area("a", "A", Level.PROVINCE, None), Area("b", "B", Level.PROVINCE, None)],
            "exactly one root",
        ),
        ([Area("a", "A", Level.CITY, None), Area("b", "B", Level.PROVINCE, "a")], "cannot sit"),
        ([Area("a", "A", Level.CITY, None), Area("b", "B", Level.CITY, "a")], "cannot sit"),
        ([Area("a", "A", Level.CITY, None), Area("b", "B", Level.SITE, "zz")], "does not exist"),
        ([Area("a", "A", Level.CITY, None), Area("a", "B", Level.SITE, "a")], "twice"),
        ([Area("A", "A", Level.CITY, None)], "area code 'A'"),
        ([Area("a", "A", Level.CITY, None, ("gw-1",))], "only sites have gateways"),
        (
            [
                Area("a", "A", Level.CITY, None),
                Area("s1", "S", Level.SITE, "a", ("gw",)),
                Area("s2", "S", Level.SITE, "a", ("gw",)),
            ],
            "two sites",
        ),
        (
            [
                Area("a", "A", Level.PROVINCE, None),
                Area("b", "B", Level.CITY, "c"),
                Area("c", "C", Level.COUNTY, "b"),
            ],
            "cannot sit",
        ),
    ],
)
def test_a_tree_that_does_not_hold_together_is_refused_by_name(
    areas: list[Area], fault: str
) -> None:
    with pytest.raises(AreaError, match=fault):
        AreaTree.build(areas)


def test_yaml_and_csv_round_trip() -> None:
    tree = sample_tree()
    again = parse_areas(dump_yaml(tree), fmt="yaml")
    assert again.areas == tree.areas
    from_csv = parse_areas(dump_csv(tree), fmt="csv")
    assert from_csv.areas == tree.areas
    assert dump_csv(tree).splitlines()[0] == "code,name,level,parent,gateways"


def test_file_faults_name_the_entry() -> None:
    with pytest.raises(AreaError, match=r"areas\.0\.children\.0\.level"):
        parse_areas(
            "areas:\n  - {code: a, name: A, level: province, children: "
            "[{code: b, name: B, level: town}]}\n",
            fmt="yaml",
        )
    with pytest.raises(AreaError, match="line 3"):
        parse_areas("code,name,level,parent\na,A,province,\nb,B,village,a\n", fmt="csv")
    with pytest.raises(AreaError, match="missing column"):
        parse_areas("code,name\na,A\n", fmt="csv")
    with pytest.raises(AreaError, match="not valid YAML"):
        parse_areas("areas: [", fmt="yaml")
    assert "浙江省" in AREAS_YAML


@given(st.text(max_size=300))
def test_any_text_is_a_tree_or_an_area_error(text: str) -> None:
    for fmt in ("yaml", "csv"):
        with contextlib.suppress(AreaError):
            parse_areas(text, fmt=fmt)
