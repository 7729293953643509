"""A misbehaving Modbus TCP device: a proxy in front of a simulated one that mangles answers.

Real field devices (and the serial servers in front of them) send wrong byte counts,
exception codes, frames cut short, line noise, answers for another transaction, or answer
too late. ``MisbehavingProxy`` listens on its own port, passes each request to a real
``SimDevice`` and mangles the answer as its current ``mode`` says, so a test can point a
gateway at it and switch modes while the gateway polls. ``Misbehaviour.OK`` passes answers
through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from enum import StrEnum
from types import TracebackType
from typing import Self

__all__ = ["MisbehavingProxy", "Misbehaviour"]

log = logging.getLogger(__name__)


class Misbehaviour(StrEnum):
    OK = "ok"  # the real answer
    EXCEPTION = "exception"  # Modbus exception 0x04, server device failure
    WRONG_BYTE_COUNT = "wrong_byte_count"  # byte count field disagrees with the data
    SHORT_DATA = "short_data"  # a well-formed answer with fewer registers than asked
    TRUNCATED = "truncated"  # half a frame, then silence
    GARBAGE = "garbage"  # random bytes instead of an answer
    WRONG_TRANSACTION = "wrong_transaction"  # an answer to another transaction id
    SLOW = "slow"  # the real answer, after ``delay_s``
    HANG_UP = "hang_up"  # the connection is closed instead of answering


class MisbehavingProxy:
    """Listens on ``host:port`` (a free port with 0) and forwards to ``upstream``."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: Misbehaviour = Misbehaviour.OK,
        delay_s: float = 3.0,
        seed: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.mode = mode
        self.delay_s = delay_s
        self.requests = 0
        self.mangled = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            while True:
                request = await _read_frame(reader)
                self.requests += 1
                up_writer.write(request)
                await up_writer.drain()
                answer = await _read_frame(up_reader)
                mode = self.mode
                if mode is not Misbehaviour.OK:
                    self.mangled += 1
                if mode is Misbehaviour.HANG_UP:
                    return
                if mode is Misbehaviour.SLOW:
                    await asyncio.sleep(self.delay_s)
                writer.write(self._mangle(mode, request, answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the gateway or the device hung up
        finally:
            self._writers.discard(writer)
            writer.close()
            if up_writer is not None:
                up_writer.close()
                with contextlib.suppress(OSError):
                    await up_writer.wait_closed()

    def _mangle(self, mode: Misbehaviour, request: bytes, answer: bytes) -> bytes:
        tid, proto, _length, unit = struct.unpack(">HHHB", answer[:7])
        pdu = answer[7:]
        match mode:
            case Misbehaviour.EXCEPTION:
                return _frame(tid, unit, bytes([request[7] | 0x80, 0x04]))
            case Misbehaviour.WRONG_BYTE_COUNT if len(pdu) > 2:
                # The count claims two bytes more than follow; the MBAP length is honest.
                return _frame(tid, unit, bytes([pdu[0], (pdu[1] + 2) & 0xFF]) + pdu[2:])
            case Misbehaviour.SHORT_DATA if len(pdu) > 4:
                data = pdu[2:-2]  # one register (or 16 coils) fewer, consistently framed
                return _frame(tid, unit, bytes([pdu[0], len(data)]) + data)
            case Misbehaviour.TRUNCATED:
                return answer[: max(1, len(answer) // 2)]
            case Misbehaviour.GARBAGE:
                return self._random.randbytes(self._random.randint(1, 64))
            case Misbehaviour.WRONG_TRANSACTION:
                return struct.pack(">HHHB", (tid + 7) & 0xFFFF, proto, len(pdu) + 1, unit) + pdu
        return answer


def _frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(7)
    (length,) = struct.unpack(">H", header[4:6])
    return header + await reader.readexactly(max(0, length - 1))
