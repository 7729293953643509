"""Grafana's macro expansion for InfluxQL, against outputs Grafana produces."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelterwatch.dashboards.macros import (
    ALL,
    MacroError,
    TimeRange,
    Variable,
    calculate_interval_ms,
    escape_regex,
    expand,
    format_interval,
    interpolate_variables,
    round_interval_ms,
    time_filter,
)

T0 = 1_700_000_000_000
HOUR = 3_600_000


def _range(ms: int, raw_from: str | None = None) -> TimeRange:
    return TimeRange(T0, T0 + ms, raw_from, "now" if raw_from else None)


@pytest.mark.parametrize(
    ("range_ms", "points", "min_interval", "expected"),
    [
        # 6 h over a 1500-pixel panel: 14.4 s → 15s.
        (6 * HOUR, 1500, None, "15s"),
        # 1 h over 1000 points: 3.6 s → 5s; with the data source's 10s minimum → 10s.
        (HOUR, 1000, None, "5s"),
        (HOUR, 1000, "10s", "10s"),
        # 24 h over 1920 pixels: 45 s → 1m (45 s is the first value not below 45000).
        (24 * HOUR, 1920, None, "1m"),
        # 7 d over 1000: 604.8 s → 10m; 30 d over 500 → 5184 s → 1h.
        (7 * 24 * HOUR, 1000, None, "10m"),
        (30 * 24 * HOUR, 500, None, "1h"),
        # 5 min over 1000: 300 ms → 200ms.
        (5 * 60_000, 1000, None, "200ms"),
        # A year over 100 points: 87.6 h → 1d; 10 years over 10: 1y.
        (365 * 24 * HOUR, 100, None, "1d"),
        (3650 * 24 * HOUR, 10, None, "1y"),
        # Tiny: 5 ms → 1ms.
        (5_000, 1000, None, "1ms"),
    ],
)
def test_interval_like_grafana(
    range_ms: int, points: int, min_interval: str | None, expected: str
) -> None:
    interval = calculate_interval_ms(_range(range_ms), points, min_interval)
    assert format_interval(interval) == expected


def test_round_interval_boundaries() -> None:
    assert round_interval_ms(9.99) == 1
    assert round_interval_ms(10) == 10
    assert round_interval_ms(12_499) == 10_000
    assert round_interval_ms(14_999) == 15_000
    assert round_interval_ms(17_500) == 20_000
    assert round_interval_ms(604_800_000) == 604_800_000
    assert round_interval_ms(3_628_800_000) == 31_536_000_000


def test_minimum_interval_is_not_rounded() -> None:
    # Grafana rounds the computed interval, then applies the minimum as given.
    assert calculate_interval_ms(_range(HOUR), 1000, "7s") == 7_000
    assert format_interval(90_000) == "1m"  # Go's FormatInterval truncates


def test_time_filter_forms() -> None:
    r = TimeRange(T0, T0 + 6 * HOUR, "now-6h", "now")
    assert time_filter(r) == f"time >= {T0}ms and time <= {T0 + 6 * HOUR}ms"
    assert time_filter(r, relative=True) == "time >= now() - 6h and time <= now()"
    absolute = TimeRange(T0, T0 + 1)
    assert time_filter(absolute, relative=True) == f"time >= {T0}ms and time <= {T0 + 1}ms"


def test_expand_replaces_every_macro() -> None:
    q = (
        'SELECT mean("x") FROM "m" WHERE $timeFilter GROUP BY time($__interval) '
        "LIMIT $__interval_ms -- $interval ${__interval}"
    )
    out = expand(q, {}, _range(6 * HOUR), max_data_points=1500)
    assert out == (
        f'SELECT mean("x") FROM "m" WHERE time >= {T0}ms and time <= {T0 + 6 * HOUR}ms '
        "GROUP BY time(15s) LIMIT 15000 -- 15s 15s"
    )


def _site(current: list[str], **kw: object) -> dict[str, Variable]:
    opts = kw.pop("options", ("shelter-01", "shelter.02", "siren-01"))
    return {
        "site": Variable(
            "site",
            current,
            multi=True,
            include_all=True,
            options=opts,
            **kw,  # type: ignore[arg-type]
        )
    }


def test_multi_value_regex() -> None:
    q = 'WHERE "site" =~ /^$site$/'
    assert interpolate_variables(q, _site(["shelter-01"])) == 'WHERE "site" =~ /^(shelter-01)$/'
    assert (
        interpolate_variables(q, _site(["shelter-01", "shelter.02"]))
        == 'WHERE "site" =~ /^(shelter-01|shelter\\.02)$/'
    )
    assert interpolate_variables("/^${site}$/", _site(["a-b"])) == "/^(a-b)$/"
    assert interpolate_variables("/^[[site]]$/", _site(["a-b"])) == "/^(a-b)$/"


def test_all_expands_to_every_option_or_the_custom_value() -> None:
    q = '"site" =~ /^$site$/'
    assert interpolate_variables(q, _site([ALL])) == (
        '"site" =~ /^(shelter-01|shelter\\.02|siren-01)$/'
    )
    assert interpolate_variables(q, _site([ALL], all_value=".*")) == '"site" =~ /^.*$/'
    with pytest.raises(MacroError, match="no options"):
        interpolate_variables(q, _site([ALL], options=()))


def test_single_value_is_escaped_only_inside_a_regex() -> None:
    v = {"kind": Variable("kind", ["door.a"])}
    assert interpolate_variables("\"kind\" = '$kind'", v) == "\"kind\" = 'door.a'"
    assert interpolate_variables('"kind" =~ /^$kind$/', v) == '"kind" =~ /^door\\.a$/'


def test_numbers_and_unknown_names_pass() -> None:
    v = {"n": Variable("n", ["1.5.6"])}
    # JavaScript parseFloat("1.5.6") is 1.5, so Grafana returns a single value unescaped...
    assert interpolate_variables("/$n/", v) == "/1.5.6/"
    # ...but escapes every element of a multi-value selection, numbers included.
    multi = {"n": Variable("n", ["1.5"], multi=True)}
    assert interpolate_variables("/$n/", multi) == "/(1\\.5)/"
    assert interpolate_variables("$timeFilter $nope", v) == "$timeFilter $nope"


def test_explicit_formats() -> None:
    vs = _site(["a.b", "c"])
    assert interpolate_variables("${site:regex}", vs) == "(a\\.b|c)"
    assert interpolate_variables("${site:pipe}", vs) == "a.b|c"
    assert interpolate_variables("${site:raw}", vs) == "a.b,c"


_GRAFANA_SPECIALS = set("\\^$*+?.()|[]{}/")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=30))
def test_escape_regex_matches_the_literal(value: str) -> None:
    escaped = escape_regex(value)
    # Every special character is preceded by a backslash, and nothing else changes.
    unescaped = re.sub(r"\\(.)", r"\1", escaped)
    assert unescaped == value
    assert re.fullmatch(escaped, value)


@given(
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9._\-]{0,20}", fullmatch=True), min_size=1, max_size=5)
)
def test_multi_value_regex_matches_exactly_the_selection(values: list[str]) -> None:
    values = [v for v in values if not re.match(r"\s*[+-]?(\d|\.\d)", v)]
    if not values:
        return
    vs = {"site": Variable("site", values, multi=True, include_all=True)}
    pattern = interpolate_variables("^$site$", vs)
    for v in values:
        assert re.fullmatch(pattern, v)
    # A dot is a literal: "a.b" must not match "axb".
    for v in values:
        if "." in v:
            assert not re.fullmatch(pattern, v.replace(".", "x")) or v.replace(".", "x") in values


def test_time_range_must_not_run_backwards() -> None:
    with pytest.raises(MacroError):
        TimeRange(2, 1)
