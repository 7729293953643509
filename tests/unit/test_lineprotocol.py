"""Line protocol: known vectors, and round trips through a reference parser.

The reference parser below follows InfluxDB 1.x's parser (models/points.go): a backslash
escapes the next character while scanning; unescaping replaces only ``\\,`` and ``\\ `` in the
measurement, ``\\,``, ``\\=`` and ``\\ `` in tag keys, tag values and field keys, and ``\\"`` and
``\\\\`` in string field values. Any other backslash stays as it is.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shelterwatch.store.base import DeviceStatus, Sample
from shelterwatch.store.lineprotocol import (
    LineProtocolError,
    encode_samples,
    escape_measurement,
    escape_tag,
    format_field_value,
    format_samples,
    format_statuses,
)

# -- reference parser ---------------------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """Split on unescaped ``sep`` (a backslash makes the parser skip the next character)."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
        elif text[i] == sep:
            parts.append("".join(cur))
            cur = []
            i += 1
        else:
            cur.append(text[i])
            i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str, chars: str) -> str:
    for ch in chars:
        text = text.replace("\\" + ch, ch)
    return text


def _scan_to(text: str, i: int, stops: str) -> int:
    """Index of the first unescaped character of ``stops`` at or after ``i``."""
    while text[i] not in stops:
        i += 2 if text[i] == "\\" else 1
    return i


def _scalar(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)


def parse_lines(data: bytes) -> list[tuple[str, dict[str, str], dict[str, object], int]]:
    """Parse line protocol the way InfluxDB 1.x does (for the subset this module writes).

    A cursor, not a split on newlines: string field values may contain newlines."""
    text = data.decode()
    assert text.endswith("\n")
    points = []
    i = 0
    while i < len(text):
        end = _scan_to(text, i, " ")
        measurement, *pairs = _split(text[i:end], ",")
        tags = {}
        for pair in pairs:
            k, v = _split(pair, "=")
            tags[_unescape(k, ",= ")] = _unescape(v, ",= ")
        i = end + 1
        fields: dict[str, object] = {}
        while True:
            end = _scan_to(text, i, "=")
            key = _unescape(text[i:end], ",= ")
            i = end + 1
            if text[i] == '"':
                i += 1
                out = []
                while text[i] != '"':
                    if text[i] == "\\" and text[i + 1] in '"\\':
                        i += 1
                    out.append(text[i])
                    i += 1
                value: object = "".join(out)
                i += 1
            else:
                end = i
                while text[end] not in ", ":
                    end += 1
                value = _scalar(text[i:end])
                i = end
            assert key not in fields, f"duplicate field {key!r}"
            fields[key] = value
            i += 1
            if text[i - 1] == " ":
                break
        end = text.index("\n", i)
        points.append((_unescape(measurement, ", "), tags, fields, int(text[i:end])))
        i = end + 1
    return points


# -- known vectors ------------------------------------------------------------------------


def sample(**kw: object) -> Sample:
    base: dict[str, object] = {
        "measurement": "ventilation",
        "site": "s1",
        "gateway": "gw1",
        "device": "fan1",
        "ts_ms": 1_700_000_000_123,
        "fields": {"rpm": 1200},
    }
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (-42, "-42i"),
        (2**63 - 1, "9223372036854775807i"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        (1e20, "1e+20"),
        (-1.25e-7, "-1.25e-07"),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\dir", '"C:\\\\dir"'),
        ("a,b c=d", '"a,b c=d"'),
        ("温度", '"温度"'),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (2**63, None),
        (-(2**63) - 1, None),
    ],
)
def test_field_values(value: object, text: str | None) -> None:
    assert format_field_value(value) == text  # type: ignore[arg-type]


def test_known_line() -> None:
    s = sample(
        measurement="door state",
        site="Hall A, north",
        gateway="gw=1",
        device="dev 1",
        fields={"open": True, "temp c": 21.5, "count": 3, "note": 'ok "x"'},
    )
    assert format_samples([s]) == (
        b"door\\ state,device=dev\\ 1,gateway=gw\\=1,site=Hall\\ A\\,\\ north "
        b'open=true,temp\\ c=21.5,count=3i,note="ok \\"x\\"" 1700000000123\n'
    )


def test_escape_functions() -> None:
    assert escape_measurement("a,b c=d") == "a\\,b\\ c=d"
    assert escape_tag("a,b c=d") == "a\\,b\\ c\\=d"
    assert escape_tag("plain") == "plain"
    assert escape_tag("a\\b") == "a\\b"


def test_nan_and_inf_are_dropped_and_counted() -> None:
    batch = [
        sample(fields={"a": math.nan, "b": 1.0}),
        sample(fields={"a": math.inf}),  # nothing left: no line at all
        sample(fields={"a": 2**64, "b": -math.inf, "c": "x"}),
    ]
    encoded = encode_samples(batch)
    assert encoded.dropped == 4
    assert encoded.lines == 2
    assert [p[2] for p in parse_lines(encoded.data)] == [{"b": 1.0}, {"c": "x"}]


def test_empty_batch() -> None:
    assert encode_samples([]) == (b"", 0, 0)


def test_empty_tag_values_are_left_out() -> None:
    assert format_samples([sample(gateway="")]) == (
        b"ventilation,device=fan1,site=s1 rpm=1200i 1700000000123\n"
    )


def test_district_is_a_tag_in_sorted_order() -> None:
    s = sample(site="shelter-01", gateway="gw-1", device="vent", district="xihu")
    assert format_samples([s]) == (
        b"ventilation,device=vent,district=xihu,gateway=gw-1,site=shelter-01 "
        b"rpm=1200i 1700000000123\n"
    )
    # Two districts of one device are two series (the series key cache keeps them apart).
    lines = format_samples([s, sample(site="shelter-01", gateway="gw-1", device="vent")])
    assert lines.splitlines()[1].startswith(b"ventilation,device=vent,gateway=gw-1,site=")
    st = DeviceStatus("shelter-01", "gw-1", "vent", "ventilation", 5, True, district="xihu")
    assert format_statuses([st]).startswith(
        b"device_status,device=vent,district=xihu,gateway=gw-1,kind=ventilation,site=shelter-01 "
    )


def test_no_district_writes_no_tag() -> None:
    assert b"district" not in format_samples([sample(district="")])
    st = DeviceStatus("s1", "gw1", "fan1", "ventilation", 5, True)
    assert b"district" not in format_statuses([st])


def test_status_line() -> None:
    st = DeviceStatus(
        site="s1",
        gateway="gw1",
        device="fan1",
        kind="ventilation",
        ts_ms=5,
        online=False,
        error='timeout "x"',
        units={"rpm": "1/min", "temp": "°C"},
    )
    data = format_statuses([st])
    [(meas, tags, fields, ts)] = parse_lines(data)
    assert meas == "device_status"
    assert tags == {"device": "fan1", "gateway": "gw1", "kind": "ventilation", "site": "s1"}
    assert fields == {
        "online": False,
        "error": 'timeout "x"',
        "units": '{"rpm": "1/min", "temp": "°C"}',
    }
    assert ts == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"measurement": ""},
        {"measurement": "a\nb"},
        {"device": "a\nb"},
        {"device": "ends\\"},
        {"device": "x\\,y"},
        {"device": "x\\ y"},
        {"device": "x\\=y"},
        {"measurement": "m\\ x"},
        {"fields": {"": 1}},
        {"fields": {"k\n": 1}},
        {"device": "\ud800"},
        {"fields": {"s": "lone \udfff surrogate"}},
    ],
)
def test_unrepresentable_raises(bad: dict[str, object]) -> None:
    with pytest.raises(LineProtocolError):
        format_samples([sample(**bad)])


# -- properties ---------------------------------------------------------------------------

# Characters that matter to the escaping, mixed with arbitrary Unicode (no lone surrogates).
_chars = st.one_of(
    st.sampled_from([*",= \"\\'\t\r\n", "é", "温", "🚨"]),
    st.characters(blacklist_categories=("Cs",)),
)
names = st.text(_chars, min_size=1, max_size=12)
tag_values = st.text(_chars, max_size=12)
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_chars, max_size=20),
)


def _representable(text: str, special: str) -> bool:
    if "\n" in text or text.endswith("\\"):
        return False
    return not any("\\" + ch in text for ch in special)


@given(
    measurement=names,
    site=tag_values,
    gateway=tag_values,
    device=tag_values,
    fields=st.dictionaries(names, field_values, min_size=1, max_size=5),
    ts=st.integers(min_value=0, max_value=2**62),
    district=tag_values,
)
def test_round_trip(
    measurement: str,
    site: str,
    gateway: str,
    device: str,
    fields: dict[str, object],
    ts: int,
    district: str,
) -> None:
    s = Sample(measurement, site, gateway, device, ts, fields, district)  # type: ignore[arg-type]
    ok = _representable(measurement, ", ") and all(
        _representable(t, ",= ") for t in (site, gateway, device, district, *fields)
    )
    if not ok:
        with pytest.raises(LineProtocolError):
            format_samples([s])
        return
    [(meas, tags, parsed, parsed_ts)] = parse_lines(format_samples([s]))
    assert meas == measurement
    expected_tags = {"site": site, "gateway": gateway, "device": device, "district": district}
    assert tags == {k: v for k, v in expected_tags.items() if v}
    assert parsed_ts == ts
    assert parsed == fields
    for key, value in fields.items():
        assert type(parsed[key]) is type(value)


@given(st.lists(st.tuples(tag_values, st.text(_chars, max_size=20)), min_size=1, max_size=20))
def test_many_lines_round_trip(rows: list[tuple[str, str]]) -> None:
    rows = [(dev, text) for dev, text in rows if _representable(dev, ",= ")]
    assume(rows)
    batch = [sample(device=dev, ts_ms=i, fields={"s": text}) for i, (dev, text) in enumerate(rows)]
    parsed = parse_lines(format_samples(batch))
    assert [(p[1].get("device", ""), p[2]["s"], p[3]) for p in parsed] == [
        (dev, text, i) for i, (dev, text) in enumerate(rows)
    ]
