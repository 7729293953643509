from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.planner import plan_reads
from shelterwatch.profiles import Point, load_profile


def _point(name: str, address: int, type_: str = "uint16", table: str = "holding") -> Point:
    return Point.model_validate(
        {"name": name, "register": table, "address": address, "type": type_}
    )


def test_forty_adjacent_points_take_one_request() -> None:
    points = [_point(f"p{i}", i * 2, "float32") for i in range(40)]
    blocks = plan_reads(points)
    assert [(b.address, b.count) for b in blocks] == [(0, 80)]
    assert {p.name: off for p, off in blocks[0].points}["p39"] == 78


def test_requests_never_exceed_the_limit() -> None:
    points = [_point(f"p{i}", i * 2, "float32") for i in range(100)]
    blocks = plan_reads(points)
    assert [b.count for b in blocks] == [124, 76]
    assert sum(len(b.points) for b in blocks) == 100


def test_gap_fill_bridges_small_gaps_only() -> None:
    points = [_point("a", 0), _point("b", 5), _point("c", 40)]
    blocks = plan_reads(points, gap_fill=10)
    assert [(b.address, b.count) for b in blocks] == [(0, 6), (40, 1)]
    assert len(plan_reads(points, gap_fill=0)) == 3


def test_tables_are_read_separately() -> None:
    points = [
        _point("a", 0),
        _point("b", 1, table="input"),
        _point("c", 0, "bool", "coil"),
        _point("d", 3, "bool", "coil"),
    ]
    blocks = plan_reads(points)
    assert sorted((b.table.value, b.address, b.count) for b in blocks) == [
        ("coil", 0, 4),
        ("holding", 0, 1),
        ("input", 1, 1),
    ]


def test_device_quirk_max_registers() -> None:
    points = [_point(f"p{i}", i) for i in range(40)]
    blocks = plan_reads(points, max_registers=16)
    assert [b.count for b in blocks] == [16, 16, 8]


def test_builtin_profiles_take_few_requests() -> None:
    for name in ("ventilation", "siren", "blast_door"):
        points = load_profile(name).points
        assert len(plan_reads(points)) <= 4, name


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError, match="max_registers"):
        plan_reads([_point("a", 0)], max_registers=126)


@given(
    st.lists(st.integers(0, 2000), min_size=1, max_size=60, unique=True),
    st.integers(1, 125),
    st.integers(0, 20),
)
def test_every_point_is_covered_once(addresses: list[int], limit: int, gap: int) -> None:
    points = [_point(f"p{i}", a) for i, a in enumerate(addresses)]
    blocks = plan_reads(points, max_registers=limit, gap_fill=gap)
    seen = [p.name for b in blocks for p, _ in b.points]
    assert sorted(seen) == sorted(p.name for p in points)
    for b in blocks:
        assert b.count <= limit
        for p, off in b.points:
            assert b.address + off == p.address
            assert off + p.words <= b.count
