"""A device's register image: the four Modbus tables laid out by its profile.

Pure, no IO: physics values go in through ``shelterwatch.codec.encode``, client writes come
out through ``codec.decode``, so the simulator and the gateway share one codec. Bit tables
hold one 0/1 entry per coil or discrete input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shelterwatch.codec import decode, encode, from_words, to_words
from shelterwatch.contract import Value
from shelterwatch.profiles.model import DataType, Point, Profile, RegisterKind

__all__ = ["NotWritable", "RegisterImage"]


class NotWritable(Exception):
    """A client write touched an address that no writable point covers."""


class RegisterImage:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.tables: dict[RegisterKind, list[int]] = {}
        for table in RegisterKind:
            points = [p for p in profile.points if p.table is table]
            # Every table gets at least one entry: pymodbus needs a block for each of the four.
            size = max((p.address + p.words for p in points), default=1)
            self.tables[table] = [0] * size

    def size(self, table: RegisterKind) -> int:
        return len(self.tables[table])

    def words(self, point: Point) -> list[int]:
        return self.tables[point.table][point.address : point.address + point.words]

    def decode(self, name: str) -> Value:
        point = self.profile.point(name)
        return decode(point, self.words(point))

    def render(self, values: Mapping[str, Value]) -> None:
        """Encode the given point values into the tables; other registers keep theirs."""
        for point in self.profile.points:
            if point.name in values:
                self._put(point, values[point.name], self.tables[point.table])

    @staticmethod
    def _put(point: Point, value: Value, table: list[int]) -> None:
        if point.type is DataType.BIT:
            assert point.bit is not None
            # Several bit points share one register: change only this one's bit.
            old = int.from_bytes(
                from_words(table[point.address : point.address + 1], point.order), "big"
            )
            mask = 1 << point.bit
            word = old | mask if value else old & ~mask
            table[point.address] = to_words(word.to_bytes(2, "big"), point.order)[0]
            return
        table[point.address : point.address + point.words] = encode(point, value)

    def decode_write(
        self, table: RegisterKind, address: int, raw: Sequence[int]
    ) -> dict[str, Value]:
        """Decode a client write into the values of the writable points it touches.

        The tables are not changed: the physics decides what the registers say next.
        Raises NotWritable, or CodecError for words that do not decode.
        """
        end = address + len(raw)
        touched = [
            p
            for p in self.profile.points
            if p.table is table and p.address < end and address < p.address + p.words
        ]
        covered = {a for p in touched if p.writable for a in range(p.address, p.address + p.words)}
        if any(a not in covered for a in range(address, end)) or any(
            not p.writable for p in touched
        ):
            raise NotWritable(f"{table.value} {address}..{end - 1} is not writable")
        candidate = list(self.tables[table])
        candidate[address:end] = raw
        return {p.name: decode(p, candidate[p.address : p.address + p.words]) for p in touched}
