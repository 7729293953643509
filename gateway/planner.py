"""Block reads: merge a device's points into as few Modbus requests as the device allows.

Pure logic. Points of one register table whose addresses lie close together are read in one
request, bridging gaps of up to ``gap_fill`` unused registers, up to ``max_registers`` words
(125 is the Modbus limit for FC3/FC4) or ``max_bits`` bits (2000 for FC1/FC2) per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shelterwatch.profiles import Point, RegisterKind

__all__ = ["MAX_BITS", "MAX_REGISTERS", "ReadBlock", "plan_reads"]

MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class ReadBlock:
    table: RegisterKind
    address: int
    count: int
    # Each point with its offset from ``address``.
    points: tuple[tuple[Point, int], ...]


def plan_reads(
    points: Sequence[Point],
    *,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
    gap_fill: int = 10,
) -> list[ReadBlock]:
    if not 1 <= max_registers <= MAX_REGISTERS:
        raise ValueError(f"max_registers must be 1..{MAX_REGISTERS}, got {max_registers}")
    if not 1 <= max_bits <= MAX_BITS:
        raise ValueError(f"max_bits must be 1..{MAX_BITS}, got {max_bits}")
    blocks: list[ReadBlock] = []
    for table in RegisterKind:
        mine = sorted((p for p in points if p.table is table), key=lambda p: p.address)
        limit = max_bits if table.is_bit else max_registers
        start = end = -1  # [start, end) of the block being built
        members: list[Point] = []
        for point in mine:
            p_end = point.address + point.words
            if point.words > limit:
                raise ValueError(
                    f"point {point.name!r} spans {point.words} registers, over the limit {limit}"
                )
            fits = members and point.address - end <= gap_fill and p_end - start <= limit
            if fits:
                members.append(point)
                end = max(end, p_end)
                continue
            if members:
                blocks.append(_block(table, start, end, members))
            start, end, members = point.address, p_end, [point]
        if members:
            blocks.append(_block(table, start, end, members))
    return blocks


def _block(table: RegisterKind, start: int, end: int, members: list[Point]) -> ReadBlock:
    return ReadBlock(table, start, end - start, tuple((p, p.address - start) for p in members))
