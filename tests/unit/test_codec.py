"""The register codec: every type in every order, known vectors, and refusals."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelterwatch.codec import decode, decode_raw, encode, encode_raw, from_words, to_words
from shelterwatch.errors import CodecError
from shelterwatch.profiles import load_profile
from shelterwatch.profiles.model import DataType, Order, Point

ORDERS = list(Order)
INT_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}
SCALES = [1.0, 0.1, 0.01, 0.0625, 10.0, -0.5]
OFFSETS = [0.0, -0.25, 40.0, -273.15]
words16 = st.integers(0, 0xFFFF)


def point(kind: DataType, order: Order = Order.ABCD, **extra: Any) -> Point:
    """A point of ``kind`` on the right register table, with the keys the type needs."""
    table = "coil" if kind is DataType.BOOL else "holding"
    if kind is DataType.BIT:
        extra.setdefault("bit", 0)
    if kind is DataType.STRING:
        extra.setdefault("length", 4)
    return Point(name="p", register=table, address=0, type=kind, order=order, **extra)


def f32(x: float) -> float:
    (y,) = struct.unpack(">f", struct.pack(">f", x))
    return float(y)


def test_every_data_type_is_covered() -> None:
    covered = {*INT_RANGES, DataType.FLOAT32, DataType.FLOAT64, DataType.BOOL, DataType.BIT}
    assert covered | {DataType.STRING} == set(DataType)


# --------------------------------------------------------------------------------------------
# Round trips, every type in every order


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", list(INT_RANGES))
@given(data=st.data())
def test_int_raw_round_trip(kind: DataType, order: Order, data: st.DataObject) -> None:
    lo, hi = INT_RANGES[kind]
    raw = data.draw(st.integers(lo, hi))
    p = point(kind, order)
    words = encode_raw(p, raw)
    assert len(words) == kind.words
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_raw(p, words) == raw
    assert type(decode_raw(p, words)) is int
    # Unscaled: the published value is the raw integer itself.
    assert decode(p, words) == raw
    assert encode(p, raw) == words


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", list(INT_RANGES))
@given(data=st.data())
def test_int_scaled_round_trip(kind: DataType, order: Order, data: st.DataObject) -> None:
    lo, hi = INT_RANGES[kind]
    # Stay where a float holds the raw integer exactly (see the int64 precision test below).
    raw = data.draw(st.integers(max(lo, -(2**50)), min(hi, 2**50)))
    scale = data.draw(st.sampled_from(SCALES))
    offset = data.draw(st.sampled_from(OFFSETS))
    p = point(kind, order, scale=scale, offset=offset)
    value = raw * scale + offset
    words = encode(p, value)
    assert words == encode_raw(p, raw)
    assert decode_raw(p, words) == raw
    assert decode(p, words) == pytest.approx(value, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("order", ORDERS)
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_raw_round_trip(order: Order, x: float) -> None:
    p = point(DataType.FLOAT32, order)
    words = encode_raw(p, x)
    assert len(words) == 2
    assert decode_raw(p, words) == f32(x)
    assert decode(p, words) == f32(x)


@pytest.mark.parametrize("order", ORDERS)
@given(
    x=st.floats(-1e6, 1e6, allow_nan=False),
    scale=st.sampled_from(SCALES),
    offset=st.sampled_from(OFFSETS),
)
def test_float32_scaled_round_trip(order: Order, x: float, scale: float, offset: float) -> None:
    p = point(DataType.FLOAT32, order, scale=scale, offset=offset)
    words = encode(p, x)
    stored = f32((x - offset) / scale)
    assert decode_raw(p, words) == stored
    expected = stored if (scale, offset) == (1.0, 0.0) else stored * scale + offset
    assert decode(p, words) == expected
    assert decode(p, words) == pytest.approx(x, rel=1e-6, abs=1e-4)


@pytest.mark.parametrize("order", ORDERS)
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_float64_raw_round_trip(order: Order, x: float) -> None:
    p = point(DataType.FLOAT64, order)
    words = encode_raw(p, x)
    assert len(words) == 4
    assert decode_raw(p, words) == x
    assert encode(p, x) == words


@pytest.mark.parametrize("order", ORDERS)
@given(
    x=st.floats(-1e12, 1e12, allow_nan=False),
    scale=st.sampled_from(SCALES),
    offset=st.sampled_from(OFFSETS),
)
def test_float64_scaled_round_trip(order: Order, x: float, scale: float, offset: float) -> None:
    p = point(DataType.FLOAT64, order, scale=scale, offset=offset)
    assert decode(p, encode(p, x)) == pytest.approx(x, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.booleans())
def test_bool_round_trip(order: Order, value: bool) -> None:
    p = point(DataType.BOOL, order)
    assert encode_raw(p, value) == [int(value)]
    assert encode(p, value) == [int(value)]
    assert decode(p, [int(value)]) is value


@pytest.mark.parametrize("order", ORDERS)
@given(word=words16, bit=st.integers(0, 15))
def test_bit_decodes_from_the_register_in_every_order(order: Order, word: int, bit: int) -> None:
    p = point(DataType.BIT, order, bit=bit)
    registers = to_words(word.to_bytes(2, "big"), order)
    assert decode_raw(p, registers) is bool(word >> bit & 1)
    assert decode(p, registers) is bool(word >> bit & 1)


@pytest.mark.parametrize("order", ORDERS)
def test_bit_cannot_be_encoded(order: Order) -> None:
    p = point(DataType.BIT, order, bit=3)
    with pytest.raises(CodecError, match="write the register"):
        encode_raw(p, True)
    with pytest.raises(CodecError):
        encode(p, True)


# Text that survives the string codec: no NUL, no trailing space (both are padding).
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=16).filter(
    lambda s: not s.endswith(" ") and len(s.encode()) <= 16
)


@pytest.mark.parametrize("order", ORDERS)
@given(text=texts)
def test_string_round_trip(order: Order, text: str) -> None:
    p = point(DataType.STRING, order, length=8)
    words = encode_raw(p, text)
    assert len(words) == 8
    assert decode_raw(p, words) == text
    assert encode(p, text) == words
    assert decode(p, words) == text


@pytest.mark.parametrize("order", ORDERS)
@given(data=st.binary(max_size=40))
def test_words_round_trip(order: Order, data: bytes) -> None:
    padded = data + b"\x00" * (len(data) % 2)
    assert from_words(to_words(data, order), order) == padded


# --------------------------------------------------------------------------------------------
# Known vectors


@pytest.mark.parametrize(
    ("order", "words"),
    [
        (Order.ABCD, [0x42F6, 0xE666]),
        (Order.CDAB, [0xE666, 0x42F6]),
        (Order.BADC, [0xF642, 0x66E6]),
        (Order.DCBA, [0x66E6, 0xF642]),
    ],
)
def test_float32_123_45(order: Order, words: list[int]) -> None:
    p = point(DataType.FLOAT32, order)
    assert encode(p, 123.45) == words
    assert decode(p, words) == f32(123.45)
    assert decode(p, words) == pytest.approx(123.45, abs=1e-5)


@pytest.mark.parametrize(
    ("kind", "value", "order", "words"),
    [
        (DataType.INT32, -2, Order.ABCD, [0xFFFF, 0xFFFE]),
        (DataType.INT32, -2, Order.CDAB, [0xFFFE, 0xFFFF]),
        (DataType.INT32, -2, Order.BADC, [0xFFFF, 0xFEFF]),
        (DataType.INT32, -2, Order.DCBA, [0xFEFF, 0xFFFF]),
        (DataType.UINT32, 0x12345678, Order.ABCD, [0x1234, 0x5678]),
        (DataType.UINT32, 0x12345678, Order.CDAB, [0x5678, 0x1234]),
        (DataType.UINT32, 0x12345678, Order.BADC, [0x3412, 0x7856]),
        (DataType.UINT32, 0x12345678, Order.DCBA, [0x7856, 0x3412]),
        (DataType.INT16, -1, Order.ABCD, [0xFFFF]),
        (DataType.INT16, -32768, Order.ABCD, [0x8000]),
        (DataType.UINT16, 0x1234, Order.CDAB, [0x1234]),  # one word: no word swap
        (DataType.UINT16, 0x1234, Order.BADC, [0x3412]),
        (DataType.UINT16, 0x1234, Order.DCBA, [0x3412]),
        (DataType.UINT64, 0x0102030405060708, Order.ABCD, [0x0102, 0x0304, 0x0506, 0x0708]),
        (DataType.UINT64, 0x0102030405060708, Order.CDAB, [0x0708, 0x0506, 0x0304, 0x0102]),
        (DataType.UINT64, 0x0102030405060708, Order.BADC, [0x0201, 0x0403, 0x0605, 0x0807]),
        (DataType.UINT64, 0x0102030405060708, Order.DCBA, [0x0807, 0x0605, 0x0403, 0x0201]),
        (DataType.INT64, -1, Order.DCBA, [0xFFFF] * 4),
        (DataType.FLOAT64, 1.0, Order.ABCD, [0x3FF0, 0, 0, 0]),
        (DataType.FLOAT64, 1.0, Order.DCBA, [0, 0, 0, 0xF03F]),
        (DataType.FLOAT32, -2.0, Order.ABCD, [0xC000, 0x0000]),
    ],
)
def test_known_vectors(kind: DataType, value: Any, order: Order, words: list[int]) -> None:
    p = point(kind, order)
    assert encode_raw(p, value) == words
    assert decode(p, words) == value
    assert encode(p, value) == words


def test_bit_in_register() -> None:
    vent = load_profile("ventilation")
    fan_fault, filter_alarm = vent.point("fan_fault"), vent.point("filter_alarm")
    assert decode(fan_fault, [0b10]) is False
    assert decode(filter_alarm, [0b10]) is True
    assert decode(fan_fault, [0b11]) is True
    assert decode(point(DataType.BIT, bit=15), [0x8000]) is True
    assert decode(point(DataType.BIT, bit=14), [0x8000]) is False
    # BADC swaps the bytes: bit 0 of the value sits in the register's high byte.
    assert decode(point(DataType.BIT, Order.BADC, bit=0), [0x0100]) is True


def test_string_with_padding() -> None:
    firmware = load_profile("siren").point("firmware")
    words = encode(firmware, "V2.1.0")
    assert words == [0x5632, 0x2E31, 0x2E30, 0, 0, 0, 0, 0]
    assert decode(firmware, words) == "V2.1.0"
    # Space padding is stripped as well as NUL padding.
    spaced = [0x5632, 0x2E31, 0x2E30, 0x2020, 0x2020, 0x2020, 0x2020, 0x2020]
    assert decode(firmware, spaced) == "V2.1.0"
    assert decode(firmware, [0] * 8) == ""
    # An odd byte count is padded to whole registers.
    assert encode(point(DataType.STRING, length=2), "abc") == [0x6162, 0x6300]


def test_string_too_long() -> None:
    with pytest.raises(CodecError, match="holds 16 bytes"):
        encode(load_profile("siren").point("firmware"), "V2.1.0-build-20250918")


def test_scale_and_offset_4_to_20_ma() -> None:
    # water.inlet_pressure: 4000 µA = 0 MPa, 20000 µA = 1.0 MPa.
    pressure = load_profile("water").point("inlet_pressure")
    assert decode(pressure, [4000]) == pytest.approx(0.0, abs=1e-12)
    assert decode(pressure, [12000]) == pytest.approx(0.5)
    assert decode(pressure, [20000]) == pytest.approx(1.0)
    assert encode(pressure, 0.5) == [12000]
    assert encode(pressure, 1.0) == [20000]
    assert encode(pressure, 0.0) == [4000]


def test_scaled_signed() -> None:
    overpressure = load_profile("ventilation").point("overpressure")
    assert decode(overpressure, [412]) == pytest.approx(41.2)
    assert decode(overpressure, [0xFFF6]) == pytest.approx(-1.0)
    assert encode(overpressure, -1.0) == [0xFFF6]
    assert encode(overpressure, 41.24) == [412]  # rounds to the nearest raw step


def test_enum() -> None:
    position = load_profile("blast_door").point("position")
    assert decode(position, [2]) == "closed"
    assert decode(position, [3]) == "locked"
    assert decode(position, [9]) == "9"  # an unknown raw state is published as its number
    assert encode(position, "locked") == [3]
    assert encode(position, "open") == [0]
    assert encode(position, 2) == [2]
    with pytest.raises(CodecError, match="no state 'ajar'"):
        encode(position, "ajar")
    mode = load_profile("ventilation").point("mode")
    assert encode(mode, "filtered") == [2]
    assert decode(mode, [1]) == "isolated"


# --------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (DataType.UINT16, 70000),
        (DataType.UINT16, -1),
        (DataType.INT16, 32768),
        (DataType.INT16, -32769),
        (DataType.UINT32, -1),
        (DataType.UINT32, 2**32),
        (DataType.INT32, 2**31),
        (DataType.UINT64, 2**64),
        (DataType.INT16, 1.5),
        (DataType.UINT32, 0.25),
        (DataType.INT16, math.inf),
        (DataType.FLOAT32, 1e40),
        (DataType.INT16, "12"),
        (DataType.FLOAT32, "x"),
    ],
)
def test_out_of_range_raises(kind: DataType, value: Any) -> None:
    p = point(kind)
    with pytest.raises(CodecError):
        encode_raw(p, value)
    if not isinstance(value, float) or kind is DataType.FLOAT32:
        with pytest.raises(CodecError):
            encode(p, value)


def test_scaled_value_out_of_range_raises() -> None:
    tank_level = load_profile("water").point("tank_level")  # uint16, scale 0.1
    assert encode(tank_level, 6553.5) == [65535]
    with pytest.raises(CodecError):
        encode(tank_level, 7000.0)
    with pytest.raises(CodecError):
        encode(tank_level, -0.1)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("bits", [b"\x7f\xc0\x00\x00", b"\xff\x80\x00\x00", b"\x7f\x80\x00\x00"])
def test_nan_and_inf_float32_decode_raises(order: Order, bits: bytes) -> None:
    p = point(DataType.FLOAT32, order)
    words = to_words(bits, order)
    assert not math.isfinite(decode_raw(p, words))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="not a reading"):
        decode(p, words)


def test_nan_float64_decode_raises() -> None:
    p = point(DataType.FLOAT64)
    with pytest.raises(CodecError):
        decode(p, to_words(struct.pack(">d", math.nan), Order.ABCD))


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (DataType.FLOAT32, [0x42F6]),
        (DataType.FLOAT32, [0x42F6, 0xE666, 0]),
        (DataType.UINT16, []),
        (DataType.UINT16, [1, 2]),
        (DataType.INT64, [0, 0]),
        (DataType.FLOAT64, [0, 0, 0]),
        (DataType.STRING, [0x4142]),
        (DataType.BOOL, []),
        (DataType.BIT, [0, 0]),
    ],
)
def test_wrong_register_count_raises(kind: DataType, words: list[int]) -> None:
    p = point(kind)
    with pytest.raises(CodecError, match="needs"):
        decode_raw(p, words)
    with pytest.raises(CodecError):
        decode(p, words)


@pytest.mark.parametrize("bad", [70000, -1, 0x10000])
def test_register_values_must_be_words(bad: int) -> None:
    with pytest.raises(CodecError, match="16-bit"):
        decode(point(DataType.UINT16), [bad])
    with pytest.raises(CodecError):
        from_words([0, bad], Order.CDAB)


# --------------------------------------------------------------------------------------------
# Regressions: values that once slipped through the codec.


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_non_finite_into_int_raises_codec_error(value: float) -> None:
    with pytest.raises(CodecError):
        encode(point(DataType.UINT16, scale=0.1), value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [(DataType.INT64, 2**53 + 1), (DataType.UINT64, 2**53 + 1), (DataType.INT64, 2**63 - 1)],
)
def test_encode_64_bit_integers_exactly(kind: DataType, value: int) -> None:
    p = point(kind)
    assert decode(p, encode(p, value)) == value


def test_encode_int64_below_range_raises() -> None:
    p = point(DataType.INT64)
    with pytest.raises(CodecError):
        encode_raw(p, -(2**63) - 1)  # passes: encode_raw keeps the int
    with pytest.raises(CodecError):
        encode(p, -(2**63) - 1)


@pytest.mark.parametrize("value", ["false", "0", "off", 2, 0.5])
def test_bool_point_refuses_non_bool(value: Any) -> None:
    with pytest.raises(CodecError):
        encode(point(DataType.BOOL), value)
