"""One Modbus link: one pymodbus client and one serialisation point.

A link is a Modbus TCP host:port, a serial port (RTU on RS-485), or a serial server reached
over TCP (RTU framing). The hub is the only place that talks to pymodbus. Every request goes
through ``read`` or ``write_*`` under the hub's lock, so requests on one link never interleave:
the devices on one serial bus are polled one at a time, devices on different links at once.

Bus etiquette is kept under the lock, because it is part of using the bus: the link's
``pause_after_connect_s`` after a (re)connect and its ``inter_request_pause_s`` between the
end of one request and the start of the next. Waiting to reconnect is not: a failed connect
sets a backoff deadline, and requests before it fail at once without waiting.

Failures come out as DeviceTimeout or ConnectError; the caller decides what they mean for its
device. A link that cannot connect is logged once at WARNING, then at DEBUG, and once at INFO
when it connects again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pymodbus.client import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException

from gateway.errors import DeviceRefused
from gateway.settings import DeviceConfig, TcpTransport, Transport, check_shared_links
from gateway.transports import link_kind
from shelterwatch.backoff import Backoff
from shelterwatch.errors import ConfigError, ConnectError, DeviceTimeout
from shelterwatch.profiles import RegisterKind

__all__ = ["DeviceRefused", "ModbusHub", "hubs_for"]

log = logging.getLogger(__name__)

# Register table -> (read method, result attribute). One table, no if-chains.
_READS: dict[RegisterKind, tuple[str, str]] = {
    RegisterKind.COIL: ("read_coils", "bits"),
    RegisterKind.DISCRETE: ("read_discrete_inputs", "bits"),
    RegisterKind.INPUT: ("read_input_registers", "registers"),
    RegisterKind.HOLDING: ("read_holding_registers", "registers"),
}


class ModbusHub:
    """The one client and lock of one link.

    ``ModbusHub(link)`` takes a transport from the settings. ``ModbusHub(host, port,
    timeout_s=..., retries=...)`` is the older Modbus TCP spelling and builds a TcpTransport.
    """

    def __init__(
        self,
        link: Transport | str,
        port: int | None = None,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> None:
        if isinstance(link, str):
            options: dict[str, Any] = {"timeout_s": timeout_s, "retries": retries}
            link = TcpTransport(
                host=link,
                port=port or 502,
                **{k: v for k, v in options.items() if v is not None},
            )
        elif port is not None or timeout_s is not None or retries is not None:
            raise TypeError("ModbusHub(link) takes its settings from the link")
        self.link: Transport = link
        self._kind = link_kind(link)
        self._lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self._retry_at = 0.0
        self._quiet_until = 0.0  # no request starts before this (inter-request pause)
        self._failing = False  # the last connect failed (log once)
        self.requests = 0
        self.connects = 0

    @property
    def name(self) -> str:
        return self.link.link_id

    @property
    def timeout_s(self) -> float:
        return self.link.timeout_s

    @property
    def retries(self) -> int:
        return self.link.retries

    def __repr__(self) -> str:
        return f"ModbusHub({self.link.type} {self.name})"

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ensure(self) -> ModbusBaseClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise ConnectError(f"{self.name}: not connected; next attempt in {wait:.1f} s")
        client = self._kind.client(self.link)
        cause: Exception | None = None
        try:
            ok = await client.connect()
            error = "cannot connect (refused, timed out, or the port does not open)"
        except Exception as exc:
            # pyserial raises more than OSError for a port it cannot set up (termios.error,
            # ValueError); whatever it is, the link is down and the hub retries with backoff.
            ok, error, cause = False, f"{type(exc).__name__}: {exc}", exc
        if not ok:
            client.close()
            delay = self._backoff.next()
            self._retry_at = time.monotonic() + delay
            self._log_failure(error, delay)
            raise ConnectError(f"{self.name}: {error}") from cause
        if self._failing:
            log.info("link %s connected again", self.name)
            self._failing = False
        self._backoff.reset()
        self._client = client
        self.connects += 1
        pause = self.link.pause_after_connect_s
        if pause:
            # Bus etiquette, so under the lock: nothing may go out on this link meanwhile.
            await asyncio.sleep(pause)
        return client

    def _log_failure(self, error: str, delay: float) -> None:
        if self._failing:
            log.debug("link %s still down: %s; next attempt in %.1f s", self.name, error, delay)
            return
        self._failing = True
        log.warning(
            "link %s (%s) is down: %s; retrying with backoff, its devices are marked bad",
            self.name,
            self.link.type,
            error,
        )

    async def read(
        self, table: RegisterKind, address: int, count: int, unit_id: int
    ) -> list[int] | list[bool]:
        method, attr = _READS[table]
        async with self._lock:
            client = await self._ensure()
            result = await self._call(client, method, address, count=count, device_id=unit_id)
        values: list[Any] = getattr(result, attr)[:count]
        if len(values) < count:
            raise DeviceTimeout(f"{self.name}: short answer, {len(values)} of {count}")
        return values

    async def write_registers(self, address: int, words: Sequence[int], unit_id: int) -> None:
        async with self._lock:
            client = await self._ensure()
            await self._call(client, "write_registers", address, list(words), device_id=unit_id)

    async def write_register(self, address: int, word: int, unit_id: int) -> None:
        """FC6: one holding register (devices that lack FC16 still take this)."""
        async with self._lock:
            client = await self._ensure()
            await self._call(client, "write_register", address, word, device_id=unit_id)

    async def write_coil(self, address: int, value: bool, unit_id: int) -> None:
        async with self._lock:
            client = await self._ensure()
            await self._call(client, "write_coil", address, value, device_id=unit_id)

    async def _call(self, client: ModbusBaseClient, method: str, *args: Any, **kw: Any) -> Any:
        # Called with the lock held.
        pause = self.link.inter_request_pause_s
        if pause:
            wait = self._quiet_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self.requests += 1
        try:
            result = await getattr(client, method)(*args, **kw)
        except ConnectionException as exc:
            self._drop()
            raise ConnectError(f"{self.name}: {exc}") from exc
        except ModbusException as exc:
            # A timed-out TCP link is dropped so the next call reconnects cleanly; on a
            # serial bus one silent unit says nothing about the link, which stays open.
            if self._kind.drop_on_timeout:
                self._drop()
            raise DeviceTimeout(f"{self.name}: {exc}") from exc
        except OSError as exc:
            self._drop()
            raise ConnectError(f"{self.name}: {exc}") from exc
        finally:
            if pause:
                self._quiet_until = time.monotonic() + pause
        if result.isError():
            raise DeviceRefused(f"{self.name}: device answered with an exception: {result}")
        return result


def hubs_for(devices: Iterable[DeviceConfig]) -> dict[str, ModbusHub]:
    """One hub per link, keyed by device id (devices on one link share one hub).

    Raises ConfigError when devices on one link disagree on its settings.
    """
    devices = list(devices)
    try:
        check_shared_links(devices)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    by_link: dict[str, ModbusHub] = {}
    hubs: dict[str, ModbusHub] = {}
    for device in devices:
        link = device.transport
        hub = by_link.get(link.link_id)
        if hub is None:
            hub = by_link[link.link_id] = ModbusHub(link)
        hubs[device.id] = hub
    return hubs
