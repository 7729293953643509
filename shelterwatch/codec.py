"""The register codec: raw Modbus words to engineering values and back.

Pure functions, no IO. Every type and each of the four byte/word orders goes through one
path: pack big-endian with ``struct``, then apply the order's swaps to the 16-bit words.
Scaling is ``value = raw * scale + offset``. ``reading`` is ``decode`` plus the checks for
what a device means as "no reading" (sentinel raw values, a value outside ``valid_range``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from shelterwatch.contract import Value
from shelterwatch.errors import CodecError
from shelterwatch.profiles.model import DataType, Order, Point

__all__ = [
    "Reader",
    "compile_reader",
    "decode",
    "decode_raw",
    "encode",
    "encode_raw",
    "from_words",
    "in_valid_range",
    "is_sentinel",
    "reading",
    "to_words",
]

# struct format and integer range per word type.
_FORMATS: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
_FLOATS = (DataType.FLOAT32, DataType.FLOAT64)


def _swap(words: list[int], order: Order) -> list[int]:
    if order.swap_bytes:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order.swap_words:
        words.reverse()
    return words


def to_words(data: bytes, order: Order) -> list[int]:
    """Big-endian bytes (A first) to registers in the device's order."""
    if len(data) % 2:
        data += b"\x00"
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return _swap(words, order)


def from_words(words: Sequence[int], order: Order) -> bytes:
    """Registers in the device's order to big-endian bytes (A first)."""
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise CodecError(f"register value {w} is not a 16-bit word")
    # Both swaps are their own inverse, so the same function undoes them.
    return b"".join(w.to_bytes(2, "big") for w in _swap(list(words), order))


def decode_raw(point: Point, words: Sequence[int]) -> int | float | bool | str:
    """Decode registers (or one bit for coils) to the raw, unscaled value."""
    if len(words) != point.words:
        raise CodecError(f"point {point.name!r} needs {point.words} registers, got {len(words)}")
    kind = point.type
    if kind is DataType.BOOL:
        return bool(words[0])
    if kind is DataType.BIT:
        assert point.bit is not None
        word = int.from_bytes(from_words(words, point.order), "big")
        return bool(word >> point.bit & 1)
    if kind is DataType.STRING:
        return from_words(words, point.order).rstrip(b"\x00 ").decode("utf-8", errors="replace")
    (raw,) = struct.unpack(_FORMATS[kind], from_words(words, point.order))
    return raw  # type: ignore[no-any-return]


def decode(point: Point, words: Sequence[int]) -> Value:
    """Decode registers to the published value: scaled, or the enum label."""
    return _engineering(point, decode_raw(point, words))


def reading(point: Point, words: Sequence[int]) -> Value:
    """Decode a device's reading, rejecting what the device means as "no reading".

    Like ``decode``, and also raises CodecError for one of the point's sentinel raw values
    and for an engineering value outside the point's ``valid_range``.
    """
    raw = decode_raw(point, words)
    if is_sentinel(point, raw):
        raise CodecError(f"point {point.name!r} reads {raw!r}, the device's 'no reading' value")
    value = _engineering(point, raw)
    if not in_valid_range(point, value):
        assert point.valid_range is not None
        low, high = point.valid_range
        raise CodecError(f"point {point.name!r} reads {value!r}, outside [{low:g}, {high:g}]")
    return value


Reader = Callable[[Sequence[int], int], Value]


def compile_reader(point: Point) -> Reader:
    """``reading`` for one point, prepared once: ``reader(block, offset)`` decodes the point
    from a block of registers (or bits) read from the device, starting at ``offset``.

    The gateway calls this for every point of every poll, so the per-point work (struct
    format, swaps, which checks apply) is settled here, not on each read. Words are trusted to
    be 16-bit, as a Modbus client returns them.
    """
    raw_of = _compile_raw(point)
    plain = (
        point.enum is None
        and not point.sentinel
        and point.valid_range is None
        and point.scale == 1.0
        and point.offset == 0.0
        and point.type not in _FLOATS
    )
    if plain:
        return raw_of

    def read(block: Sequence[int], offset: int) -> Value:
        raw = raw_of(block, offset)
        if point.sentinel and is_sentinel(point, raw):
            raise CodecError(f"point {point.name!r} reads {raw!r}, the device's 'no reading' value")
        value = _engineering(point, raw)
        if point.valid_range is not None and not in_valid_range(point, value):
            low, high = point.valid_range
            raise CodecError(f"point {point.name!r} reads {value!r}, outside [{low:g}, {high:g}]")
        return value

    return read


def _compile_raw(point: Point) -> Callable[[Sequence[int], int], Any]:
    kind, n, order = point.type, point.words, point.order
    if kind is DataType.BOOL:
        return lambda block, off: bool(block[off])
    if kind in (DataType.BIT, DataType.STRING):
        # Rare and cheap enough: the general path.
        return lambda block, off: decode_raw(point, [int(w) for w in block[off : off + n]])
    unpack = struct.Struct(_FORMATS[kind]).unpack
    pack = struct.Struct(f">{n}H").pack
    if order is Order.ABCD:
        if kind is DataType.UINT16:
            return lambda block, off: int(block[off])
        return lambda block, off: unpack(pack(*block[off : off + n]))[0]
    return lambda block, off: unpack(pack(*_swap(list(block[off : off + n]), order)))[0]


def is_sentinel(point: Point, raw: int | float | bool | str) -> bool:
    """Whether a raw (unscaled) value is one of the point's "no reading" values."""
    if not point.sentinel or isinstance(raw, bool | str):
        return False
    if point.type is DataType.FLOAT32:
        # Compare as float32, so that 3.4028235e38 in a profile matches FLT_MAX on the wire.
        return any(raw == struct.unpack(">f", struct.pack(">f", s))[0] for s in point.sentinel)
    if point.type is DataType.FLOAT64:
        return raw in point.sentinel
    # Integers by bit pattern: for an int16, -1 and 0xFFFF are the same register.
    mask = (1 << (16 * point.type.words)) - 1
    return (int(raw) & mask) in {int(s) & mask for s in point.sentinel}


def in_valid_range(point: Point, value: Value) -> bool:
    """Whether an engineering value lies in the point's valid_range (true without one)."""
    if point.valid_range is None or isinstance(value, bool | str):
        return True
    low, high = point.valid_range
    # Scaling is floating point: 20000 µA * 0.0000625 - 0.25 is 1.0000000000000002 MPa.
    slack = 1e-9 * max(abs(low), abs(high), 1.0)
    return low - slack <= value <= high + slack


def _engineering(point: Point, raw: int | float | bool | str) -> Value:
    if isinstance(raw, bool | str):
        return raw
    if point.enum is not None:
        return point.enum.get(int(raw), str(raw))
    if isinstance(raw, float) and not math.isfinite(raw):
        raise CodecError(f"point {point.name!r} decoded to {raw}, which is not a reading")
    if point.scale == 1.0 and point.offset == 0.0:
        return raw
    return raw * point.scale + point.offset


def encode_raw(point: Point, raw: int | float | bool | str) -> list[int]:
    """Encode a raw (unscaled) value to registers in the point's order."""
    kind = point.type
    if kind is DataType.BOOL:
        # Only a real boolean (or 0/1) may switch a coil: "false" or 2 must not turn it on.
        if isinstance(raw, bool) or (isinstance(raw, int) and raw in (0, 1)):
            return [int(raw)]
        raise CodecError(f"point {point.name!r} takes true or false, got {raw!r}")
    if kind is DataType.BIT:
        raise CodecError(f"point {point.name!r} is one bit of a register: write the register")
    if kind is DataType.STRING:
        assert point.length is not None
        data = str(raw).encode()
        if len(data) > 2 * point.length:
            raise CodecError(
                f"point {point.name!r} holds {2 * point.length} bytes, got {len(data)}"
            )
        return to_words(data.ljust(2 * point.length, b"\x00"), point.order)
    if isinstance(raw, str):
        raise CodecError(f"point {point.name!r} is numeric, got {raw!r}")
    if kind not in _FLOATS and isinstance(raw, float):
        if not raw.is_integer():
            raise CodecError(f"point {point.name!r} is an integer type, got {raw}")
        raw = int(raw)
    try:
        data = struct.pack(_FORMATS[kind], raw)
    except (struct.error, OverflowError) as exc:
        raise CodecError(f"point {point.name!r} ({kind.value}) cannot hold {raw!r}") from exc
    return to_words(data, point.order)


def encode(point: Point, value: Value) -> list[int]:
    """Encode a published value (scaled, or an enum label) to registers."""
    if point.enum is not None and isinstance(value, str):
        for code, label in point.enum.items():
            if label == value:
                return encode_raw(point, code)
        raise CodecError(
            f"point {point.name!r} has no state {value!r}: {sorted(point.enum.values())}"
        )
    if isinstance(value, bool) or not point.type.is_numeric:
        return encode_raw(point, value)
    if isinstance(value, str):
        raise CodecError(f"point {point.name!r} is numeric, got {value!r}")
    if isinstance(value, int) and point.scale == 1.0 and point.offset == 0.0:
        return encode_raw(point, value)  # exact, also past 2**53
    scaled = (value - point.offset) / point.scale
    if not math.isfinite(scaled):
        raise CodecError(f"point {point.name!r} cannot hold {value!r}")
    return encode_raw(point, scaled if point.type in _FLOATS else round(scaled))
