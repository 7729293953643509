"""Collector settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.spool import SpoolSettings
from shelterwatch.config import MqttSettings, ServiceSettings
from shelterwatch.contract import SLUG_PATTERN, subscriptions

__all__ = ["AlertSettings", "CollectorSettings"]

_Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
_Posture = Literal["peacetime", "converting", "wartime"]


class AlertSettings(BaseModel):
    """The alert engine in the collector (docs/alerts.md). Off unless ``enabled``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # A rule pack YAML file; unset = the default pack shipped in collector/alerts/.
    rules_path: Path | None = None
    # The engine's state (timers, windows, active alerts): survives a collector restart.
    state_path: Path = Path("data/alert-state.db")
    # Each site's declared posture; sites not listed have default_posture.
    postures: dict[_Slug, _Posture] = Field(default_factory=dict)
    default_posture: _Posture = "peacetime"
    # Per-site values of rule parameters: {shelter-01: {water_reserve_pct: 40}}.
    site_params: dict[_Slug, dict[_Slug, float]] = Field(default_factory=dict)
    # An active critical alert is published again this often (same raised_ts); null = never.
    repeat_critical_s: Annotated[float, Field(gt=0)] | None = 900.0
    # How often time-driven checks run: duration timers, stale devices, repeats.
    tick_s: Annotated[float, Field(gt=0, le=60)] = 1.0


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
    alerts: AlertSettings = AlertSettings()
    # Where batches wait, durably and in order, while the store is down (collector/spool.py).
    spool: SpoolSettings = SpoolSettings()
    # Larger payloads are counted (``oversized``) and dropped before parsing. Contract messages
    # are a few kilobytes; the broker config refuses more than 256 KiB as well.
    max_payload_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 256 * 1024
    # Collectors with the same group split the data stream between them through an MQTT
    # shared subscription ($share/<group>/...); each member keeps its own client_id. Unset: this
    # collector takes the whole stream. See docs/scaling.md.
    shared_group: _Slug | None = None

    @model_validator(mode="after")
    def _alerts_see_everything(self) -> CollectorSettings:
        # The broker deals a group's messages out one by one, so a member sees a random part of
        # each device's readings: durations, trends and flatlines would be judged on fragments.
        if self.shared_group is not None and self.alerts.enabled:
            raise ValueError(
                "alerts.enabled needs the whole data stream, but shared_group splits it between "
                "collectors: run the alert engine in one collector without shared_group "
                "(docs/scaling.md)"
            )
        return self

    def topic_filters(self) -> list[str]:
        """What this collector subscribes to.

        A member of a shared group takes its share of the data and every state message:
        retained state never reaches a shared subscription, and each member needs the sites
        and kinds the states name for data messages that leave them out. Storing a status
        once per member is harmless, since the second copy overwrites the first.
        """
        filters = subscriptions(self.mqtt.prefix)
        if self.shared_group is None:
            return filters
        data = f"{self.mqtt.prefix}/gw/+/dev/+/data"
        return [f"$share/{self.shared_group}/{f}" if f == data else f for f in filters]
