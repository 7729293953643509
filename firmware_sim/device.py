"""One simulated device: a pymodbus server serving a register image kept by the physics.

A device listens on Modbus TCP (or RTU frames over TCP, like a serial device server, with
``rtu_over_tcp=True``). ``SimSerialBus`` puts devices on a serial port as Modbus RTU units,
several on one port like an RS-485 bus, each answering on its own unit id.

Why pymodbus's ``SimDevice`` with an ``action`` and not a datablock subclass: in pymodbus 3.16
``ModbusSequentialDataBlock`` and ``ModbusDeviceContext`` are deprecated shells that are
converted to ``SimDevice`` blocks when the server starts, and the server never calls a
datablock's methods again, so overriding them would not see any request. The ``action``
hook is the documented way to see every request. It runs before pymodbus touches the
block, which lets it (1) validate a write and feed it to the physics, and (2) copy the
current image into the block, so that reads always answer what the physics holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData
from pymodbus.simulator import SimDevice as ModbusSimDevice

from firmware_sim.physics import Physics
from firmware_sim.registers import NotWritable, RegisterImage
from shelterwatch.contract import Value
from shelterwatch.errors import CodecError
from shelterwatch.profiles.model import Profile, RegisterKind

__all__ = ["SimBank", "SimDevice", "SimSerialBus"]

log = logging.getLogger(__name__)

_TABLE_BY_FUNCTION: dict[int, RegisterKind] = {
    1: RegisterKind.COIL,
    5: RegisterKind.COIL,
    15: RegisterKind.COIL,
    2: RegisterKind.DISCRETE,
    3: RegisterKind.HOLDING,
    6: RegisterKind.HOLDING,
    16: RegisterKind.HOLDING,
    22: RegisterKind.HOLDING,
    23: RegisterKind.HOLDING,
    4: RegisterKind.INPUT,
}


def _pack_bits(bits: list[int]) -> list[int]:
    """0/1 entries to 16-bit words, bit 0 first: how pymodbus stores coil blocks."""
    words = [0] * ((len(bits) + 15) // 16)
    for i, bit in enumerate(bits):
        if bit:
            words[i // 16] |= 1 << (i % 16)
    return words


class SimDevice:
    """A simulated Modbus TCP device at ``host:port``, unit ``unit_id``."""

    def __init__(
        self,
        site: str,
        device_id: str,
        profile: Profile,
        physics: Physics,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        rtu_over_tcp: bool = False,
    ) -> None:
        self.site = site
        self.device_id = device_id
        self.profile = profile
        self.physics = physics
        self.host = host
        self.port = port  # 0 until the first start picks a free port
        self.unit_id = unit_id
        self.rtu_over_tcp = rtu_over_tcp
        self.image = RegisterImage(profile)
        # Fault hook (scenario stuck_sensor): points whose registers keep these values whatever
        # the physics says, like a transmitter that has hung.
        self.stuck: dict[str, Value] = {}
        self._server: ModbusTcpServer | None = None
        # Set when the device answers as one unit of a SimBank instead of its own server.
        self.bank: SimBank | None = None
        self.refresh()

    def __repr__(self) -> str:
        return (
            f"SimDevice({self.site}/{self.device_id} {self.profile.name} {self.host}:{self.port})"
        )

    @property
    def running(self) -> bool:
        if self.bank is not None:
            return self.bank.running
        return self._server is not None

    def refresh(self) -> None:
        """Re-encode the registers from the physics' current values."""
        values = self.physics.values(self.profile.kind)
        if self.stuck:
            values = {**values, **self.stuck}
        self.image.render(values)

    def value(self, point: str) -> Value:
        """The point's value as a client decodes it from the registers now."""
        return self.image.decode(point)

    def _blocks(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        def bits(table: RegisterKind) -> list[SimData]:
            return [SimData(0, count=self.image.size(table), values=False, datatype=SimType.BITS)]

        def words(table: RegisterKind) -> list[SimData]:
            size = self.image.size(table)
            return [SimData(0, count=size, values=0, datatype=SimType.REGISTERS)]

        return (
            bits(RegisterKind.COIL),
            bits(RegisterKind.DISCRETE),
            words(RegisterKind.HOLDING),
            words(RegisterKind.INPUT),
        )

    def modbus_device(self, unit_id: int | None = None) -> ModbusSimDevice:
        """A pymodbus device answering from this device's image, as unit ``unit_id``.

        Every server that serves this device (TCP, serial bus) gets its own, all of them
        answering from the same image and feeding writes to the same physics.
        """
        unit = self.unit_id if unit_id is None else unit_id
        return ModbusSimDevice(unit, simdata=self._blocks(), action=self._action)

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port the first time if port is 0).

        A device of a bank starts the bank: it has no server of its own.
        """
        if self.bank is not None:
            await self.bank.start()
            return
        if self._server is not None:
            return
        framer = FramerType.RTU if self.rtu_over_tcp else FramerType.SOCKET
        server = ModbusTcpServer(
            self.modbus_device(), address=(self.host, self.port), framer=framer
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"{self!r}: cannot listen on {self.host}:{self.port}") from exc
        listener = server.transport
        if self.port == 0 and isinstance(listener, asyncio.Server):
            self.port = int(listener.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Close the listening socket and drop every client connection.

        A device of a bank stops the whole bank: its units share one server, like the posts
        behind one serial server.
        """
        if self.bank is not None:
            await self.bank.stop()
            return
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        # close(), not shutdown(): the same thing without resolving the serve_forever future,
        # which nobody awaits in background mode.
        server.close()
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        table = _TABLE_BY_FUNCTION.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if values is not None:
            error = self._write(table, address, [int(v) for v in values])
            if error is not None:
                return error
        current = self.image.tables[table]
        packed = _pack_bits(current) if table.is_bit else current
        # Every block starts at address 0, so the block's registers line up with the image.
        registers[: len(packed)] = packed
        return None

    def _write(self, table: RegisterKind, address: int, raw: list[int]) -> ExcCodes | None:
        try:
            writes = self.image.decode_write(table, address, raw)
        except NotWritable as exc:
            log.info("%r: refused write: %s", self, exc)
            return ExcCodes.ILLEGAL_ADDRESS
        except CodecError as exc:
            log.info("%r: refused write to %s %d: %s", self, table.value, address, exc)
            return ExcCodes.ILLEGAL_VALUE
        try:
            # The physics takes the write before the next refresh, so a tick never loses it.
            self.physics.apply_writes(self.profile.kind, writes)
        except ValueError as exc:
            log.info("%r: refused write to %s %d: %s", self, table.value, address, exc)
            return ExcCodes.ILLEGAL_VALUE
        finally:
            # Also after a refusal: part of a multi-point write may have been taken.
            self.refresh()
        return None


class SimSerialBus:
    """Simulated devices on one serial port, as Modbus RTU units of one RS-485 bus.

    ``units`` maps each unit id to the device answering it. ``async with SimSerialBus(...)``
    or ``start``/``stop``. The devices' TCP servers, if running, keep running: both answer
    from the same register image.
    """

    def __init__(
        self,
        port: str,
        units: Mapping[int, SimDevice],
        *,
        baudrate: int = 9600,
        parity: Literal["N", "E", "O"] = "N",
        stopbits: Literal[1, 2] = 1,
    ) -> None:
        if not units:
            raise ValueError("a serial bus needs at least one device")
        bad = [u for u in units if not 1 <= u <= 247]
        if bad:
            raise ValueError(f"unit ids must be 1..247, got {bad}")
        self.port = port
        self.units = dict(units)
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self._server: ModbusSerialServer | None = None

    def __repr__(self) -> str:
        units = ", ".join(f"{u}={d.site}/{d.device_id}" for u, d in self.units.items())
        return f"SimSerialBus({self.port} {self.baudrate} {self.parity}{self.stopbits}: {units})"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        devices = [device.modbus_device(unit) for unit, device in self.units.items()]
        server = ModbusSerialServer(
            devices,
            port=self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=8,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"{self!r}: cannot open {self.port}") from exc
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class SimBank:
    """Several simulated devices behind one Modbus TCP server, each on its own unit id.

    Cheap at scale (one listening socket for many siren posts) and what a serial device
    server in front of an RS-485 bus looks like to the gateway: one host:port, many units.
    The devices' ``host``, ``port`` and ``unit_id`` are set to the bank's.
    """

    def __init__(self, devices: list[SimDevice], *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not 1 <= len(devices) <= 247:
            raise ValueError(f"a bank serves 1..247 units, got {len(devices)}")
        self.devices = devices
        self.host = host
        self.port = port
        self._server: ModbusTcpServer | None = None
        for unit, device in enumerate(devices, start=1):
            device.bank, device.unit_id, device.host, device.port = self, unit, host, port

    def __repr__(self) -> str:
        return f"SimBank({self.host}:{self.port}, {len(self.devices)} units)"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        units = [d.modbus_device() for d in self.devices]
        server = ModbusTcpServer(units, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"{self!r}: cannot listen on {self.host}:{self.port}") from exc
        listener = server.transport
        if self.port == 0 and isinstance(listener, asyncio.Server):
            self.port = int(listener.sockets[0].getsockname()[1])
            for device in self.devices:
                device.port = self.port
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        server.close()
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()
