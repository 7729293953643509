"""What the collector costs: CPU seconds and peak memory per 1,000 points, from 100 to 10,000
simulated shelters (the synthetic fleet), measured in one run.

    synthetic fleet ──MQTT QoS 1──▶ Mosquitto ──▶ collector (its own process) ──▶ InfluxDB

For each fleet size a fresh collector process (``shelterwatch collector``, InfluxDB store) and
a fresh topic prefix: first the fleet's births (gateway and device states) are published and
stored, then ``--messages`` data messages at ``--rate``. The collector's CPU time (user +
system, from /proc) is read when it idles after its start-up and after the births, and again
once InfluxDB holds every value; its peak resident memory (VmHWM) at the end. Figures are per
1,000 stored points (field values) of the data phase.

The limit is the smallest fleet's CPU per 1,000 points; the ratio is that over the largest
fleet's, so 1.0 means the cost per point does not grow with the fleet. No goal in issue 9:
the figures are reported for sizing (docs/scaling.md).

Usage: .venv/bin/python bench/cost.py [--shelters 100,1000,10000] [--messages N] [--rate R]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import InfluxServer, MosquittoServer

from collector import CollectorSettings
from firmware_sim.synthetic import SyntheticFleet, SyntheticSpec, run_synthetic
from shelterwatch.config import MqttSettings
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store.influx import InfluxStore, quote_ident
from shelterwatch.store.lineprotocol import STATUS_MEASUREMENT

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def idle_cpu(pid: int, still_s: float = 0.6) -> float:
    """The process's CPU time once it stops growing (start-up or a phase is over)."""
    last = cpu_s(pid)
    while True:
        await asyncio.sleep(still_s)
        now = cpu_s(pid)
        if now - last < 0.02:
            return now
        last = now


async def stored_values(store: InfluxStore) -> tuple[int, int]:
    """(field values of data, device status rows) in the store."""
    results = await store.query("SHOW MEASUREMENTS")
    names = [r[0] for s in results[0].get("series", []) for r in s["values"]]
    values = statuses = 0
    for name in names:
        rows = await store.query(f"SELECT count(*) FROM {quote_ident(name)}")
        for series in rows[0].get("series", []):
            counts = [int(v) for v in series["values"][0][1:] if v is not None]
            if name == STATUS_MEASUREMENT:
                statuses += max(counts, default=0)
            else:
                values += sum(counts)
    return values, statuses


async def wait_stored(store: InfluxStore, values: int, statuses: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await stored_values(store)
        if got[0] >= values and got[1] >= statuses:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"stored {got} of ({values}, {statuses}) within {timeout:g} s")
        await asyncio.sleep(0.3)


async def one_size(
    mq_port: int, influx_url: str, tmp: Path, shelters: int, messages: int, rate: float
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    mqtt = MqttSettings(host="127.0.0.1", port=mq_port, prefix=f"cost{tag}/v1")
    db = f"cost_{tag}"
    settings = CollectorSettings(
        mqtt=mqtt, client_id=f"cost-{tag}", store_url=f"influxdb://{influx_url[7:]}/{db}"
    )
    # The session and its subscriptions exist before the process starts: nothing is missed.
    async with MqttClient(mqtt, settings.client_id, persistent=True) as client:
        await client.subscribe(settings.topic_filters(), qos=1)
    config = tmp / f"collector-{tag}.yaml"
    config.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "collector",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # Every message a full snapshot: each size carries the same points per message, so the
    # cost per point compares across sizes (first visits would be snapshots anyway).
    spec = SyntheticSpec(shelters=shelters, rate=rate, connections=4, snapshot_s=0.001)
    try:
        async with InfluxStore(influx_url, db) as store:
            await idle_cpu(proc.pid)
            fleet = SyntheticFleet(spec, mqtt.prefix)
            births = fleet.births(time.time_ns() // 1_000_000)
            async with MqttClient(mqtt, f"cost-births-{tag}") as pub:
                pending = []
                for b in births:
                    await pub.inflight.acquire()
                    fut = pub.start_publish(b.topic, b.payload, retain=b.retain)
                    fut.add_done_callback(lambda _f: pub.inflight.release())
                    pending.append(fut)
                await asyncio.gather(*pending)
            statuses = shelters * 5
            await wait_stored(store, 0, statuses, timeout=120)
            cpu0 = await idle_cpu(proc.pid)
            t0 = time.perf_counter()
            stats = await run_synthetic(
                spec, mqtt, asyncio.Event(), max_messages=messages, birth=False
            )
            await wait_stored(store, stats.values, statuses, timeout=120)
            elapsed = time.perf_counter() - t0
            cpu = cpu_s(proc.pid) - cpu0
            rss = peak_rss_mb(proc.pid)
            await store.drop_database()
    finally:
        proc.terminate()
        await proc.wait()
    per_k = cpu / stats.values * 1000
    print(
        f"  {shelters:>6} shelters: {stats.messages} messages, {stats.values} points in "
        f"{elapsed:.1f} s; collector {cpu:.2f} CPU s = {per_k * 1000:.1f} ms per 1,000 points, "
        f"peak RSS {rss:.0f} MB",
        file=sys.stderr,
    )
    return {
        "shelters": shelters,
        "devices": fleet.devices,
        "births": len(births),
        "messages": stats.messages,
        "points": stats.values,
        "seconds": round(elapsed, 2),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_1000_points": round(per_k * 1000, 2),
        "cpu_ms_per_1000_messages": round(cpu / stats.messages * 1e6, 2),
        "peak_rss_mb": round(rss, 1),
    }


async def run(mq_port: int, influx_url: str, tmp: Path, args: argparse.Namespace) -> list[Any]:
    sizes = [int(s) for s in args.shelters.split(",")]
    return [await one_size(mq_port, influx_url, tmp, n, args.messages, args.rate) for n in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shelters", default="100,1000,10000")
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        with MosquittoServer(t / "mosquitto") as mq, InfluxServer(t / "influxdb") as influx:
            print(f"collector cost, {args.messages} messages at {args.rate:g}/s:", file=sys.stderr)
            rows = asyncio.run(run(mq.port, influx.url, t, args))
    small, large = rows[0], rows[-1]
    ratio = small["cpu_ms_per_1000_points"] / large["cpu_ms_per_1000_points"]
    print(
        json.dumps(
            {
                "bench": "cost",
                "figure": "cpu_ms_per_1000_points",
                "cpu_ms_per_1000_points": large["cpu_ms_per_1000_points"],
                "peak_rss_mb": large["peak_rss_mb"],
                "limit": f"cpu_ms_per_1000_points at {small['shelters']} shelters",
                "limit_cpu_ms_per_1000_points": small["cpu_ms_per_1000_points"],
                "sizes": rows,
                "rss_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
                "ratio": round(ratio, 3),
                "goal": None,
                "meets_goal": None,
            }
        )
    )


if __name__ == "__main__":
    main()
