"""Gateway settings: which broker, which site, which devices and how to poll them."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shelterwatch.config import MqttSettings, ServiceSettings
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.errors import ConfigError
from shelterwatch.profiles import load_profile

__all__ = ["DeviceConfig", "GatewaySettings", "TcpTransport"]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]


class TcpTransport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["tcp"] = "tcp"
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 502


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    # A built-in profile name or the path of a profile YAML file.
    profile: str
    transport: TcpTransport
    unit_id: Annotated[int, Field(ge=0, le=247)] = 1
    # Overrides the profile's poll interval.
    interval_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # Vendor quirks: the largest request the device answers, and how many unused registers a
    # block read may bridge.
    max_registers: Annotated[int, Field(ge=1, le=125)] = 125
    gap_fill: Annotated[int, Field(ge=0, le=124)] = 10

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str) -> str:
        # Load it now, so a bad profile is reported against this key before anything starts.
        try:
            load_profile(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value


class GatewaySettings(ServiceSettings):
    gateway_id: Slug
    site: Slug
    mqtt: MqttSettings = MqttSettings()
    devices: list[DeviceConfig] = Field(default_factory=list)
    # A full snapshot of every device this often, on top of report by exception.
    snapshot_interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    # Data messages queued for the uplink; past this the oldest waiting message is dropped
    # and counted (the durable outbox replaces this bound).
    queue_size: Annotated[int, Field(ge=10, le=1_000_000)] = 10_000

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique; repeated: {dupes}")
        return self
