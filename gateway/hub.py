"""One Modbus link: one pymodbus client and one serialisation point.

The hub is the only place that talks to pymodbus. Every request goes through ``read`` or
``write`` under the hub's lock, so requests on one link never interleave. Failures come out
as DeviceTimeout or ConnectError; the caller decides what they mean for its device. The lock
is never held while waiting to reconnect: a failed connect sets a backoff deadline, and reads
before it fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shelterwatch.backoff import Backoff
from shelterwatch.errors import ConnectError, DeviceTimeout
from shelterwatch.profiles import RegisterKind

__all__ = ["ModbusHub"]

log = logging.getLogger(__name__)

# Register table -> (read method, result attribute). One table, no if-chains.
_READS: dict[RegisterKind, tuple[str, str]] = {
    RegisterKind.COIL: ("read_coils", "bits"),
    RegisterKind.DISCRETE: ("read_discrete_inputs", "bits"),
    RegisterKind.INPUT: ("read_input_registers", "registers"),
    RegisterKind.HOLDING: ("read_holding_registers", "registers"),
}


class ModbusHub:
    def __init__(self, host: str, port: int, *, timeout_s: float = 1.0, retries: int = 1) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.retries = retries
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self._retry_at = 0.0

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ensure(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise ConnectError(f"{self.name}: not connected; next attempt in {wait:.1f} s")
        # reconnect_delay=0: pymodbus must not reconnect behind our back; we do it here.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=self.retries,
            reconnect_delay=0,
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            ok = False
            log.debug("connect to %s failed: %s", self.name, exc)
        if not ok:
            client.close()
            self._retry_at = time.monotonic() + self._backoff.next()
            raise ConnectError(f"{self.name}: connection refused or timed out")
        self._backoff.reset()
        self._client = client
        return client

    async def read(
        self, table: RegisterKind, address: int, count: int, unit_id: int
    ) -> list[int] | list[bool]:
        method, attr = _READS[table]
        async with self._lock:
            client = await self._ensure()
            result = await self._call(client, method, address, count=count, device_id=unit_id)
        values: list[Any] = list(getattr(result, attr))[:count]
        if len(values) < count:
            raise DeviceTimeout(f"{self.name}: short answer, {len(values)} of {count}")
        return values

    async def write_registers(self, address: int, words: Sequence[int], unit_id: int) -> None:
        async with self._lock:
            client = await self._ensure()
            await self._call(client, "write_registers", address, list(words), device_id=unit_id)

    async def write_coil(self, address: int, value: bool, unit_id: int) -> None:
        async with self._lock:
            client = await self._ensure()
            await self._call(client, "write_coil", address, value, device_id=unit_id)

    async def _call(self, client: AsyncModbusTcpClient, method: str, *args: Any, **kw: Any) -> Any:
        try:
            result = await getattr(client, method)(*args, **kw)
        except ModbusException as exc:
            # A timed-out or broken link is dropped, so the next call reconnects cleanly.
            self._drop()
            raise DeviceTimeout(f"{self.name}: {exc}") from exc
        except OSError as exc:
            self._drop()
            raise ConnectError(f"{self.name}: {exc}") from exc
        if result.isError():
            raise DeviceTimeout(f"{self.name}: device answered with an exception: {result}")
        return result
