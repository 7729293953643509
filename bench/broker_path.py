"""The collector's MQTT consumption against a bare subscriber that only counts, in one run.

    publisher ──MQTT QoS 1──▶ Mosquitto ──▶ (1) bare paho subscriber, counts
                                         └─▶ (2) collector: receive, parse and validate,
                                                 batch, "store" (counts only), acknowledge

The store in (2) only counts the points it is handed, so the figure is the collector's own
cost of taking messages off the broker: the paho layer on the event loop, contract parsing,
batching and manual acknowledgements. The ratio is (2) over (1). Goal (issue 9): >= 0.7.

Usage: .venv/bin/python bench/broker_path.py [--messages N] [--points-per-message P]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ingest import bare_subscriber, start_publisher
from servers import MosquittoServer

from collector import Collector, CollectorSettings
from shelterwatch.config import MqttSettings
from shelterwatch.store import DeviceStatus, LatestValue, Sample

GOAL = 0.7


class CountingStore:
    """A TimeSeriesStore that keeps nothing: it counts what it is handed."""

    def __init__(self) -> None:
        self.points = 0
        self.samples = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def write(self, samples: Sequence[Sample]) -> None:
        self.samples += len(samples)
        self.points += sum(len(s.fields) for s in samples)

    async def write_status(self, statuses: Sequence[DeviceStatus]) -> None:
        return None

    async def latest(self, site: str) -> list[LatestValue]:
        return []

    async def count(self, measurement: str, site: str | None = None) -> int:
        return self.samples

    async def sites(self) -> list[str]:
        return []


async def collector_consumption(port: int, count: int, points: int) -> dict[str, float]:
    settings = CollectorSettings(
        mqtt=MqttSettings(host="127.0.0.1", port=port),
        client_id=f"bench-broker-{uuid.uuid4().hex[:6]}",
        store_url="sqlite:///unused.db",
    )
    store = CountingStore()
    collector = Collector(settings, store)
    task = asyncio.create_task(collector.run())
    try:
        async with asyncio.timeout(20):
            await collector.subscribed.wait()
        proc, go = start_publisher(port, count, points)
        await asyncio.sleep(1.0)  # publisher start-up is not part of the measurement
        start, cpu = time.perf_counter(), time.process_time()
        go.set()
        deadline = start + 300
        while collector.acked < count:
            if time.perf_counter() > deadline:
                raise SystemExit(f"collector acked {collector.acked} of {count}")
            await asyncio.sleep(0.005)
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        proc.join(30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if store.points != count * points:
        raise SystemExit(f"the collector handed on {store.points} of {count * points} points")
    return {
        "points_per_s": count * points / elapsed,
        "cpu_us_per_message": cpu_s * 1e6 / count,
        "batches": collector.batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--points-per-message", type=int, default=20)
    args = parser.parse_args()
    n, p = args.messages, args.points_per_message
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer(Path(tmp) / "mosquitto") as mq:
        print(f"bare subscriber: {n} messages x {p} points ...", file=sys.stderr)
        bare = bare_subscriber(mq.port, n, p)
        print(f"  {bare:,.0f} points/s", file=sys.stderr)
        print("collector with a counting store ...", file=sys.stderr)
        col = asyncio.run(collector_consumption(mq.port, n, p))
        print(
            f"  {col['points_per_s']:,.0f} points/s, "
            f"{col['cpu_us_per_message']:.0f} µs CPU per message",
            file=sys.stderr,
        )
    ratio = col["points_per_s"] / bare
    print(
        json.dumps(
            {
                "bench": "broker_path",
                "messages": n,
                "points_per_message": p,
                "figure": "collector_points_per_s",
                "collector_points_per_s": round(col["points_per_s"]),
                "collector_messages_per_s": round(col["points_per_s"] / p),
                "collector_cpu_us_per_message": round(col["cpu_us_per_message"], 1),
                "collector_batches": col["batches"],
                "limit": "bare_subscriber_points_per_s",
                "bare_subscriber_points_per_s": round(bare),
                "ratio": round(ratio, 3),
                "goal": GOAL,
                "meets_goal": ratio >= GOAL,
            }
        )
    )


if __name__ == "__main__":
    main()
