"""Collector settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shelterwatch.config import MqttSettings, ServiceSettings

__all__ = ["CollectorSettings"]


class CollectorSettings(ServiceSettings):
    mqtt: MqttSettings = MqttSettings()
    # Fixed, so that the broker keeps this collector's session (and its queued messages)
    # while it is down. Two collectors must not share one id.
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "shelterwatch-collector"
    # sqlite:///path/file.db (embedded default) or influxdb://host:8086/database
    store_url: str = "sqlite:///data/shelterwatch.db"
    # A batch is written when it holds this many messages or is this old, whichever first.
    batch_messages: Annotated[int, Field(ge=1, le=100_000)] = 2000
    batch_wait_s: Annotated[float, Field(gt=0, le=10)] = 0.2
    # Unacknowledged messages the broker may send ahead (MQTT 5 receive maximum). Messages are
    # acknowledged only once stored, so this bounds how much a batch can hold.
    receive_maximum: Annotated[int, Field(ge=10, le=65535)] = 10_000
    # Timestamps further than this in the future are refused as out of range.
    max_future_s: Annotated[float, Field(gt=0)] = 86_400.0
