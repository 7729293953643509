"""The pymodbus client for each kind of link, as one table.

Each row says which pymodbus client class and framer carry a transport, and whether a request
that times out means the link itself is broken. On Modbus TCP it does (one socket, one device
or gateway: reconnect). On a serial bus, or RTU frames through a serial server, it does not:
one silent unit says nothing about the others on the same wire, so the link stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.framer import FramerType

from gateway.settings import RtuOverTcpTransport, RtuTransport, TcpTransport, Transport

__all__ = ["LinkKind", "link_kind"]


@dataclass(frozen=True, slots=True)
class LinkKind:
    # Builds a client that never reconnects on its own (reconnect_delay=0): the hub does that.
    client: Callable[[Transport], ModbusBaseClient]
    drop_on_timeout: bool


def _tcp(link: Transport) -> ModbusBaseClient:
    assert isinstance(link, TcpTransport)
    return AsyncModbusTcpClient(
        link.host,
        port=link.port,
        name=link.link_id,
        timeout=link.timeout_s,
        retries=link.retries,
        reconnect_delay=0,
    )


def _rtu_over_tcp(link: Transport) -> ModbusBaseClient:
    assert isinstance(link, RtuOverTcpTransport)
    return AsyncModbusTcpClient(
        link.host,
        port=link.port,
        framer=FramerType.RTU,
        name=link.link_id,
        timeout=link.timeout_s,
        retries=link.retries,
        reconnect_delay=0,
    )


def _rtu(link: Transport) -> ModbusBaseClient:
    assert isinstance(link, RtuTransport)
    try:
        return AsyncModbusSerialClient(
            link.port,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
            name=link.link_id,
            timeout=link.timeout_s,
            retries=link.retries,
            reconnect_delay=0,
        )
    except RuntimeError as exc:  # pymodbus says so when pyserial is missing
        raise RuntimeError(f"Modbus RTU on {link.port} needs the pyserial package") from exc


_KINDS: dict[str, LinkKind] = {
    "tcp": LinkKind(_tcp, drop_on_timeout=True),
    "rtu_over_tcp": LinkKind(_rtu_over_tcp, drop_on_timeout=False),
    "rtu": LinkKind(_rtu, drop_on_timeout=False),
}


def link_kind(link: Transport) -> LinkKind:
    return _KINDS[link.type]
