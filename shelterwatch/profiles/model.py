"""Device profiles: typed register maps, validated before any IO.

A profile describes one kind of device (a blast door, a ventilation controller, ...). Each point
says where it lives (register kind and address), how its registers decode (type and order), how
the raw number scales to engineering units, and how much it must change before it is reported.
"""

from __future__ import annotations

import math
import struct
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DataType", "Order", "Point", "Profile", "RegisterKind"]


def _fits_float32(value: float) -> bool:
    try:
        struct.pack(">f", value)  # rounds to the nearest float32, or overflows
    except OverflowError:
        return False
    return True


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class RegisterKind(StrEnum):
    COIL = "coil"  # FC1 read, FC5/15 write; one bit
    DISCRETE = "discrete"  # FC2 read only; one bit
    INPUT = "input"  # FC4 read only; 16-bit words
    HOLDING = "holding"  # FC3 read, FC6/16 write; 16-bit words

    @property
    def is_bit(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE)

    @property
    def writable(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.HOLDING)


class DataType(StrEnum):
    BOOL = "bool"  # a coil or discrete input
    BIT = "bit"  # one bit of a 16-bit register (``bit`` 0..15, 0 = least significant)
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # ``length`` registers, two ASCII/UTF-8 bytes each

    @property
    def words(self) -> int:
        """Registers one value takes (strings: see Point.words)."""
        return _WORDS[self]

    @property
    def is_numeric(self) -> bool:
        return self not in (DataType.BOOL, DataType.BIT, DataType.STRING)


_WORDS = {
    DataType.BOOL: 1,
    DataType.BIT: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.STRING: 0,
}


class Order(StrEnum):
    """Byte and word order, named by where the most significant byte A lands.

    ABCD is big-endian throughout (the Modbus default). CDAB swaps the words (common on
    Siemens), BADC swaps the bytes inside each word, DCBA is fully little-endian. For 16-bit
    types only the byte swap matters; for 64-bit types the same two swaps apply to four words.
    """

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def swap_bytes(self) -> bool:
        return self in (Order.BADC, Order.DCBA)

    @property
    def swap_words(self) -> bool:
        return self in (Order.CDAB, Order.DCBA)


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Name
    # "register" in YAML; the attribute is "table" because BaseModel owns the name "register".
    table: RegisterKind = Field(alias="register")
    address: Annotated[int, Field(ge=0, le=65535)]
    type: DataType
    order: Order = Order.ABCD
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    length: Annotated[int, Field(ge=1, le=125)] | None = None  # registers, strings only
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    deadband: Annotated[float, Field(ge=0)] = 0.0
    writable: bool = False
    # Raw integer -> label, for modes and states (published as the label).
    enum: dict[int, str] | None = None
    description: str = ""
    # Quirks of real devices; a reading that fails either check is published as quality bad
    # with no value. valid_range: [min, max] in engineering units that a healthy reading
    # stays within (a 4-20 mA input below 4 mA or above 20 mA is a broken wire or a failed
    # transmitter). sentinel: raw register values the device sends for "no reading", compared
    # before scaling; integers match by bit pattern, so 0xFFFF and -1 are the same int16.
    valid_range: tuple[float, float] | None = None
    sentinel: tuple[int | float, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        bit_register = self.table.is_bit
        if bit_register != (self.type is DataType.BOOL):
            raise ValueError(
                f"point {self.name!r}: type bool goes with coil or discrete registers, "
                f"and {self.table.value} registers need a word type"
            )
        if (self.type is DataType.BIT) != (self.bit is not None):
            raise ValueError(f"point {self.name!r}: 'bit' is required for type bit, and only there")
        if (self.type is DataType.STRING) != (self.length is not None):
            raise ValueError(
                f"point {self.name!r}: 'length' is required for type string, and only there"
            )
        if self.writable and self.type is DataType.BIT:
            raise ValueError(
                f"point {self.name!r}: one bit of a register cannot be written on its own"
            )
        if self.writable and not self.table.writable:
            raise ValueError(f"point {self.name!r}: {self.table.value} registers are read-only")
        if self.scale == 0:
            raise ValueError(f"point {self.name!r}: scale must not be 0")
        if self.enum is not None and self.type not in (DataType.INT16, DataType.UINT16):
            raise ValueError(f"point {self.name!r}: enum needs type int16 or uint16")
        if self.address + self.words > 65536:
            raise ValueError(f"point {self.name!r}: runs past register 65535")
        self._check_quirks()
        return self

    def _check_quirks(self) -> None:
        if self.valid_range is not None:
            low, high = self.valid_range
            if not self.type.is_numeric or self.enum is not None:
                raise ValueError(f"point {self.name!r}: valid_range needs a numeric point")
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f"point {self.name!r}: valid_range must be [min, max], min <= max")
        if self.sentinel is None:
            return
        if not self.type.is_numeric:
            raise ValueError(f"point {self.name!r}: sentinel needs a numeric point")
        for value in self.sentinel:
            if self.type in (DataType.FLOAT32, DataType.FLOAT64):
                if not math.isfinite(value) or (
                    self.type is DataType.FLOAT32 and not _fits_float32(value)
                ):
                    raise ValueError(
                        f"point {self.name!r}: sentinel {value!r} is not a {self.type.value}"
                    )
                continue
            bits = 16 * self.type.words
            if isinstance(value, float) or not -(2 ** (bits - 1)) <= value < 2**bits:
                raise ValueError(
                    f"point {self.name!r}: sentinel {value!r} is not a {bits}-bit integer"
                )

    @property
    def words(self) -> int:
        return self.length if self.type is DataType.STRING and self.length else self.type.words

    @property
    def value_kind(self) -> str:
        if self.type in (DataType.BOOL, DataType.BIT):
            return "bool"
        if self.type is DataType.STRING or self.enum is not None:
            return "string"
        return "number"


class Profile(BaseModel):
    """A device kind: its points and how to poll it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: Name
    description: str = ""
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    points: Annotated[list[Point], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} appears twice")
            seen.add(point.name)
        return self

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(name)
