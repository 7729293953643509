"""Gateway settings: which broker, which site, which devices and how to poll them.

A device reaches its bus through a *link*: Modbus TCP (``tcp``), Modbus RTU on a serial port
(``rtu``, RS-485), or RTU frames through a TCP socket (``rtu_over_tcp``, serial device servers).
The link carries its own timing (``timeout_s``, ``retries``, ``inter_request_pause_s``,
``pause_after_connect_s``) because it belongs to the bus, not to one device: devices that share
a link (one serial port, one host:port) must give it the same settings, and
``check_shared_links`` says which devices disagree on what.

Older files set ``timeout_s``/``retries`` on the device. They are still read: a device-level
value moves into its transport when the transport does not set it, and a device that sets both
to different values is an error. ``transport`` without ``type`` means ``tcp``, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gateway.commands import CommandSettings
from gateway.outbox import OutboxSettings
from gateway.sirens.settings import SirenSettings
from shelterwatch.config import MqttSettings, ServiceSettings
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.errors import ConfigError
from shelterwatch.profiles import load_profile

__all__ = [
    "DeviceConfig",
    "DeviceList",
    "GatewaySettings",
    "RtuOverTcpTransport",
    "RtuTransport",
    "TcpTransport",
    "Transport",
    "check_shared_links",
]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Link(BaseModel):
    """Settings every link has, whatever carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Seconds to wait for an answer, and extra tries of a request before it fails.
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # Quiet time on the link between the end of one request and the start of the next, for
    # devices (or RS-485 converters) that miss a request sent right after an answer.
    inter_request_pause_s: Annotated[float, Field(ge=0, le=10)] = 0.0
    # Quiet time after (re)connecting before the first request, for serial servers and
    # devices that drop requests sent while they set up the connection.
    pause_after_connect_s: Annotated[float, Field(ge=0, le=60)] = 0.0

    @property
    def link_id(self) -> str:
        raise NotImplementedError


class TcpTransport(_Link):
    """Modbus TCP (MBAP framing)."""

    type: Literal["tcp"] = "tcp"
    host: str
    port: Port = 502

    @property
    def link_id(self) -> str:
        return f"{self.host}:{self.port}"


class RtuOverTcpTransport(_Link):
    """Modbus RTU frames (with CRC) through a TCP socket, as serial device servers pass them."""

    type: Literal["rtu_over_tcp"] = "rtu_over_tcp"
    host: str
    port: Port

    @property
    def link_id(self) -> str:
        return f"{self.host}:{self.port}"


class RtuTransport(_Link):
    """Modbus RTU on a serial port (RS-485 or RS-232)."""

    type: Literal["rtu"] = "rtu"
    # The serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...
    port: Annotated[str, Field(min_length=1)]
    baudrate: Annotated[int, Field(ge=300, le=921_600)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    # Modbus RTU frames are 8 data bits; the field exists so a file can say so.
    bytesize: Literal[8] = 8

    @property
    def link_id(self) -> str:
        return self.port


Transport = Annotated[
    TcpTransport | RtuTransport | RtuOverTcpTransport, Field(discriminator="type")
]
_LEGACY_LINK_KEYS = ("timeout_s", "retries")


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    # A built-in profile name or the path of a profile YAML file.
    profile: str
    transport: Transport
    unit_id: Annotated[int, Field(ge=0, le=247)] = 1
    # Overrides the profile's poll interval.
    interval_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    # The older spelling of the transport's timeout_s and retries; always equal to them.
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # Vendor quirks: the largest request the device answers, how many unused registers a
    # block read may bridge, and whether the profile numbers registers from 1 (the wire
    # address is then one less: register 1 is address 0).
    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    gap_fill: Annotated[int, Field(ge=0, le=124)] = 10
    address_base: Literal[0, 1] = 0

    @model_validator(mode="before")
    @classmethod
    def _migrate_link_settings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        transport = data.get("transport")
        if isinstance(transport, BaseModel):
            given = {k: getattr(transport, k) for k in transport.model_fields_set}
            transport_dict = transport.model_dump() | {"type": getattr(transport, "type", None)}
        elif isinstance(transport, dict):
            given = dict(transport)
            transport_dict = dict(transport)
            transport_dict.setdefault("type", "tcp")
        else:
            return data
        for key in _LEGACY_LINK_KEYS:
            if key in data and key in given and data[key] != given[key]:
                raise ValueError(
                    f"{key} is set both on the device ({data[key]!r}) and on its transport "
                    f"({given[key]!r}); keep the transport's and remove the device's"
                )
            if key in data:
                transport_dict[key] = data[key]
            elif key in given:
                data[key] = given[key]
        data["transport"] = transport_dict
        return data

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str) -> str:
        # Load it now, so a bad profile is reported against this key before anything starts.
        try:
            load_profile(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _no_broadcast_unit(self) -> Self:
        # Unit 0 is the broadcast address on RTU: every device listens, none answers.
        if self.unit_id == 0 and self.transport.type != "tcp":
            raise ValueError("unit_id 0 is the RTU broadcast address; no device answers it")
        return self

    @model_validator(mode="after")
    def _addresses_fit_base(self) -> Self:
        if self.address_base:
            low = [p.name for p in load_profile(self.profile).points if p.address < 1]
            if low:
                raise ValueError(
                    f"address_base 1 numbers registers from 1, but profile {self.profile!r} "
                    f"has points at address 0: {low}"
                )
        return self

    def wire_address(self, address: int) -> int:
        """The address sent on the wire for a profile address of this device."""
        return address - self.address_base


def check_shared_links(devices: Sequence[DeviceConfig]) -> list[DeviceConfig]:
    """Devices on one link (serial port, host:port) must agree on every link setting.

    Raises ValueError naming the devices and the settings they disagree on.
    """
    first: dict[str, DeviceConfig] = {}
    problems: list[str] = []
    for device in devices:
        link = device.transport.link_id
        other = first.setdefault(link, device)
        if other is device or other.transport == device.transport:
            continue
        a, b = other.transport.model_dump(), device.transport.model_dump()
        diff = ", ".join(
            f"{key} {a.get(key)!r} vs {b.get(key)!r}"
            for key in sorted(a.keys() | b.keys())
            if a.get(key) != b.get(key)
        )
        problems.append(f"devices {other.id!r} and {device.id!r} share link {link} ({diff})")
    if problems:
        raise ValueError(
            "devices on one link must give it the same transport settings: " + "; ".join(problems)
        )
    return list(devices)


# A device list whose shared links agree (for GatewaySettings.devices).
DeviceList = Annotated[list[DeviceConfig], AfterValidator(check_shared_links)]


class GatewaySettings(ServiceSettings):
    gateway_id: Slug
    site: Slug
    # The site's district (a slug, e.g. xihu), sent with every message and stored as the
    # district tag that dashboards filter by. None: no district is sent or stored.
    district: Slug | None = None
    mqtt: MqttSettings = MqttSettings()
    devices: DeviceList = Field(default_factory=list)
    # A full snapshot of every device this often, on top of report by exception.
    snapshot_interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    # The gateway state, with health, is republished this often.
    state_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    outbox: OutboxSettings = OutboxSettings()
    commands: CommandSettings = CommandSettings()
    sirens: SirenSettings = SirenSettings()

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique; repeated: {dupes}")
        return self
