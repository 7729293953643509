"""End-to-end ingest rate against the two bare limits it runs on, measured in one run.

    publisher ──MQTT──▶ Mosquitto ──▶ collector ──line protocol──▶ InfluxDB

1. bare subscriber: a plain paho client that only counts the same messages (QoS 1);
2. bare writer: one client POSTing the same line protocol to InfluxDB in 5,000-line batches;
3. end to end: the real collector (manual acks, batching, InfluxStore), timed from the first
   publish until every value is durable (the collector acknowledged its last batch).

A point is one value; a message carries one device's values. The ratio is the end-to-end rate
over the slower of the two bare limits. Goal (issue 9): ratio >= 0.6 at >= 50,000 points/s.

Usage: .venv/bin/python bench/ingest.py [--messages N] [--points-per-message P]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import InfluxServer, MosquittoServer

from collector import Collector, CollectorSettings
from shelterwatch.config import MqttSettings
from shelterwatch.contract import DeviceData, data_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store import Sample
from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.lineprotocol import format_samples

T0 = 1_700_000_000_000
DEVICES = 50
GOAL = 0.6


def make_messages(count: int, points: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        device = f"dev-{i % DEVICES:03d}"
        data = DeviceData(
            ts=T0 + i // DEVICES,
            seq=i,
            site="bench",
            kind="bench",
            values={f"p{j:02d}": round(20.0 + j + (i % 97) * 0.01, 3) for j in range(points)},
        )
        out.append((data_topic("gw-bench", device), data.to_json()))
    return out


def _publisher(port: int, count: int, points: int, go: mp.Event) -> None:  # type: ignore[type-arg]
    messages = make_messages(count, points)

    async def main() -> None:
        settings = MqttSettings(host="127.0.0.1", port=port, max_inflight=100)
        async with MqttClient(settings, f"bench-pub-{uuid.uuid4().hex[:6]}") as client:
            go.wait()
            futures = []
            for topic, payload in messages:
                await client.inflight.acquire()
                fut = client.start_publish(topic, payload)
                fut.add_done_callback(lambda _f: client.inflight.release())
                futures.append(fut)
            await asyncio.gather(*futures)

    asyncio.run(main())


def start_publisher(port: int, count: int, points: int) -> tuple[mp.Process, mp.Event]:  # type: ignore[type-arg]
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    proc = ctx.Process(target=_publisher, args=(port, count, points, go), daemon=True)
    proc.start()
    return proc, go


def bare_subscriber(port: int, count: int, points: int) -> float:
    """Points/s delivered to a subscriber that only counts."""
    done = threading.Event()
    received = 0

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        protocol=paho.MQTTv5,
    )
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 10_000
    client.connect("127.0.0.1", port, properties=props)
    client.loop_start()
    subscribed = threading.Event()
    client.on_subscribe = lambda *_a: subscribed.set()
    client.subscribe("shelterwatch/v1/gw/+/dev/+/data", qos=1)
    subscribed.wait(10)
    proc, go = start_publisher(port, count, points)
    time.sleep(1.0)  # let the publisher connect; timing starts at "go"
    start = time.perf_counter()
    go.set()
    if not done.wait(300):
        raise SystemExit(f"bare subscriber got {received} of {count}")
    elapsed = time.perf_counter() - start
    proc.join(30)
    client.loop_stop()
    client.disconnect()
    return count * points / elapsed


def bare_writer(url: str, count: int, points: int) -> float:
    """Points/s one client writes to InfluxDB as line protocol in 5,000-line batches."""
    db = f"bare_{uuid.uuid4().hex[:8]}"
    samples = []
    for i, (topic, payload) in enumerate(make_messages(count, points)):
        data = DeviceData.model_validate_json(payload)
        device = topic.split("/")[-2]
        samples.append(Sample("bench", "bench", "gw-bench", device, data.ts + i, data.values))
    bodies = [format_samples(samples[i : i + 5000]) for i in range(0, len(samples), 5000)]
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
        start = time.perf_counter()
        for body in bodies:
            http.post(
                "/write", params={"db": db, "precision": "ms"}, content=body
            ).raise_for_status()
        elapsed = time.perf_counter() - start
        http.post("/query", params={"q": f'DROP DATABASE "{db}"'})
    return count * points / elapsed


async def end_to_end(mqtt_port: int, influx_url: str, count: int, points: int) -> dict[str, float]:
    db = f"e2e_{uuid.uuid4().hex[:8]}"
    mqtt = MqttSettings(host="127.0.0.1", port=mqtt_port)
    settings = CollectorSettings(
        mqtt=mqtt,
        client_id=f"bench-collector-{uuid.uuid4().hex[:6]}",
        store_url=f"influxdb://x/{db}",
        batch_messages=1000,
        batch_wait_s=0.05,
    )
    async with InfluxStore(influx_url, db) as store:
        collector = Collector(settings, store)
        task = asyncio.create_task(collector.run())
        try:
            async with asyncio.timeout(20):
                await collector.subscribed.wait()
            proc, go = start_publisher(mqtt_port, count, points)
            await asyncio.sleep(1.0)  # publisher start-up is not part of the measurement
            start = time.perf_counter()
            go.set()
            deadline = start + 300
            while collector.acked < count:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"collector acked {collector.acked} of {count}")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - start
            proc.join(30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        stored = await store.count("bench")
        await store.drop_database()
    if stored != count:
        raise SystemExit(f"stored {stored} of {count} messages")
    return {"points_per_s": count * points / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--points-per-message", type=int, default=20)
    args = parser.parse_args()
    n, p = args.messages, args.points_per_message
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = MosquittoServer(Path(tmp) / "mosquitto")
        influx = InfluxServer(Path(tmp) / "influxdb")
        with mosquitto, influx:
            print(f"bare subscriber: {n} messages x {p} points ...", file=sys.stderr)
            sub = bare_subscriber(mosquitto.port, n, p)
            print(f"  {sub:,.0f} points/s", file=sys.stderr)
            print("bare writer ...", file=sys.stderr)
            writer = bare_writer(influx.url, n, p)
            print(f"  {writer:,.0f} points/s", file=sys.stderr)
            print("end to end (collector -> InfluxDB) ...", file=sys.stderr)
            e2e = asyncio.run(end_to_end(mosquitto.port, influx.url, n, p))
            print(f"  {e2e['points_per_s']:,.0f} points/s", file=sys.stderr)
    limit = min(sub, writer)
    print(
        json.dumps(
            {
                "bench": "ingest",
                "messages": n,
                "points_per_message": p,
                "bare_subscriber_points_per_s": round(sub),
                "bare_writer_points_per_s": round(writer),
                "end_to_end_points_per_s": round(e2e["points_per_s"]),
                "end_to_end_seconds": round(e2e["seconds"], 3),
                "limit": "subscriber" if sub <= writer else "writer",
                "ratio": round(e2e["points_per_s"] / limit, 3),
                "goal": {"ratio": GOAL, "points_per_s": 50_000},
                "meets_goal": e2e["points_per_s"] / limit >= GOAL and e2e["points_per_s"] >= 50_000,
            }
        )
    )


if __name__ == "__main__":
    main()
