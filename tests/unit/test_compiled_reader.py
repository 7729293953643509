"""The gateway's compiled reader decodes exactly like codec.reading, for every type and order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelterwatch import codec
from shelterwatch.errors import CodecError
from shelterwatch.profiles import DataType, Order, Point

WORD_TYPES = [t for t in DataType if t not in (DataType.BOOL, DataType.STRING)]


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(*args))
    except CodecError:
        return ("bad", None)


@pytest.mark.parametrize("order", list(Order))
@pytest.mark.parametrize("kind", WORD_TYPES)
@given(data=st.data())
def test_compiled_reader_matches_reading(kind: DataType, order: Order, data: st.DataObject) -> None:
    extra: dict[str, object] = {}
    if kind is DataType.BIT:
        extra["bit"] = data.draw(st.integers(0, 15))
    elif data.draw(st.booleans()):
        extra["scale"] = data.draw(st.sampled_from([0.1, 0.01, 2.0]))
        extra["offset"] = data.draw(st.sampled_from([0.0, -0.25, 10.0]))
    if kind in (DataType.UINT16, DataType.INT16) and data.draw(st.booleans()):
        extra["sentinel"] = [0x7FFF, 0xFFFF]
    if kind is not DataType.BIT and data.draw(st.booleans()):
        extra["valid_range"] = [-100.0, 100.0]
    point = Point.model_validate(
        {
            "name": "p",
            "register": "input",
            "address": 3,
            "type": kind.value,
            "order": order.value,
            **extra,
        }
    )
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=point.words, max_size=point.words))
    pad = data.draw(st.integers(0, 3))
    block = [0] * pad + words + [0] * 2
    expected = _outcome(codec.reading, point, words)
    got = _outcome(codec.compile_reader(point), block, pad)
    if expected[0] == "ok" and isinstance(expected[1], float) and expected[1] != expected[1]:
        return
    assert got == expected


def test_coils_and_strings() -> None:
    coil = Point.model_validate({"name": "c", "register": "coil", "address": 0, "type": "bool"})
    assert codec.compile_reader(coil)([False, True], 1) is True
    text = Point.model_validate(
        {"name": "s", "register": "input", "address": 0, "type": "string", "length": 2}
    )
    assert codec.compile_reader(text)([0, 0x5357, 0x2D31], 1) == "SW-1"
