"""What the fault tests check at the end: every seq a gateway sent is in the store exactly once.

A *ledger* records each data message a gateway produced (seq, device, ts, how many values).
From it follows what the store must hold: one row per point of every message that carried
values, under (device, ts). ``store_rows`` reads what the SQLite store holds; comparing the two
finds a lost message (missing key or fewer rows) and a duplicate (an extra key: the same
reading stored under two timestamps) alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shelterwatch.config import MqttSettings
from shelterwatch.contract import DeviceData, parse_topic
from shelterwatch.errors import ConnectError
from shelterwatch.mqtt_client import MqttClient

__all__ = ["Ledger", "Monitor", "compare", "store_rows"]

Key = tuple[str, str, int]  # gateway, device, ts


@dataclass
class Ledger:
    # seq -> (gateway, device, ts, number of values), per gateway.
    messages: dict[tuple[str, int], tuple[str, int, int]] = field(default_factory=dict)
    received: Counter[tuple[str, int]] = field(default_factory=Counter)
    historical: int = 0

    def record(self, topic: str, payload: bytes, prefix: str) -> None:
        parsed = parse_topic(topic, prefix)
        data = DeviceData.model_validate_json(payload)
        assert parsed.gateway is not None and parsed.device is not None
        key = (parsed.gateway, data.seq)
        entry = (parsed.device, data.ts, len(data.values))
        # A replay of one seq must repeat the same reading, never a new timestamp.
        assert self.messages.setdefault(key, entry) == entry, (key, entry, self.messages[key])
        self.received[key] += 1
        self.historical += data.historical

    def seqs(self, gateway: str) -> list[int]:
        return sorted(s for g, s in self.messages if g == gateway)

    def expected_rows(self) -> dict[Key, int]:
        rows: dict[Key, int] = {}
        for (gateway, _seq), (device, ts, n) in self.messages.items():
            if n:
                rows[(gateway, device, ts)] = n
        return rows


def store_rows(path: Path) -> dict[Key, int]:
    """(gateway, device, ts) -> number of point rows in the SQLite store."""
    with sqlite3.connect(path) as db:
        return {
            (g, d, int(t)): int(n)
            for g, d, t, n in db.execute(
                "SELECT gateway, device, ts_ms, count(*) FROM samples "
                "GROUP BY gateway, device, ts_ms"
            )
        }


def compare(expected: dict[Key, int], stored: dict[Key, int]) -> dict[str, Any]:
    """Lost and duplicated readings; both empty when the store holds exactly the ledger."""
    lost = {k: n for k, n in expected.items() if stored.get(k, 0) < n}
    extra = {k: n for k, n in stored.items() if n > expected.get(k, 0)}
    return {"lost": lost, "duplicated": extra}


class Monitor:
    """A persistent QoS 1 subscriber that records every data message the broker passes on."""

    def __init__(self, mqtt: MqttSettings, gateway: str = "+") -> None:
        self.mqtt = mqtt
        self.ledger = Ledger()
        self.client_id = f"monitor-{uuid.uuid4().hex[:8]}"
        self._filter = f"{mqtt.prefix}/gw/{gateway}/dev/+/data"
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with MqttClient(
                    self.mqtt, self.client_id, persistent=True, receive_maximum=10_000
                ) as client:
                    await client.subscribe([self._filter], qos=1)
                    self.subscribed.set()
                    async for message in client.messages():
                        self.ledger.record(message.topic, message.payload, self.mqtt.prefix)
            except ConnectError:
                await asyncio.sleep(0.2)
