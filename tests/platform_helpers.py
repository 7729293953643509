"""Helpers to run the platform's services against the test servers."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from collector import Collector, CollectorSettings
from firmware_sim import Fleet
from gateway import Gateway, GatewaySettings
from shelterwatch.cli.services import gateway_yaml
from shelterwatch.config import MqttSettings
from shelterwatch.store import TimeSeriesStore


def mqtt_settings(port: int, **kw: Any) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=port, reconnect_max_s=1.0, **kw)


def gateways_for(
    fleet: Fleet,
    mqtt: MqttSettings,
    interval_s: float | None = None,
    outbox_dir: Path | None = None,
    **kw: Any,
) -> list[Gateway]:
    outbox_dir = outbox_dir or Path(tempfile.mkdtemp(prefix="sw-outbox-"))
    gateways = []
    for site in fleet.gateway_config(mqtt.host, mqtt.port, mqtt.prefix):
        doc = gateway_yaml(site, mqtt) | kw
        doc.setdefault("outbox", {"path": str(outbox_dir / f"{site['gateway_id']}.db")})
        doc.setdefault(
            "commands",
            {"replay_cache_path": str(outbox_dir / f"{site['gateway_id']}-commands.db")},
        )
        if interval_s is not None:
            for device in doc["devices"]:
                device["interval_s"] = interval_s
        gateways.append(Gateway(GatewaySettings.model_validate(doc)))
    return gateways


def collector_for(store: TimeSeriesStore, mqtt: MqttSettings, **kw: Any) -> Collector:
    settings = CollectorSettings(mqtt=mqtt, **({"batch_wait_s": 0.05} | kw))
    return Collector(settings, store)


@contextlib.asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run service coroutines in the background for the block; cancel them after it."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r
