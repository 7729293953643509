"""Soak: the demo fleet at ten times its data rate through real services, for a long time.

The demo fleet (3 shelters of 5 devices, 4 siren posts) is simulated in this process. Each
site's gateway and one collector run as the commands an operator starts (``shelterwatch
gateway|collector --config``), against a Mosquitto and an InfluxDB of their own in a
temporary directory. Every poll interval and the snapshot interval are a tenth of the
demo's. A monitor subscriber notes every data message the broker passes on.

At the end the devices fall silent, the gateways drain their outboxes and stop, and the
store is compared with what the monitor saw, reading by reading:

- ``lost``: readings that reached the broker but not the store, plus seqs never seen;
- ``duplicated``: readings stored under a (site, device, time) the broker never carried;
- ``late``: live messages that reached the broker more than ``--late-s`` after their ``ts``;
- memory (VmRSS) and open file handles of each service from /proc, after a warm-up and at
  the end.

Usage: ``make soak`` (``SOAK_MINUTES=30`` by default) or
``.venv/bin/python bench/soak.py --minutes 3``. Progress goes to stderr; the last line on
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import InfluxServer, MosquittoServer

from firmware_sim import Fleet, FleetSpec
from shelterwatch.cli.services import gateway_yaml
from shelterwatch.config import MqttSettings
from shelterwatch.contract import DeviceData, parse_topic
from shelterwatch.errors import ConnectError
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.profiles import load_profile

SPEEDUP = 10.0
DEMO_SNAPSHOT_S = 15.0


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_figures(pid: int) -> dict[str, int]:
    """Resident memory (kB) and open file handles of a process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Monitor:
    def __init__(self, mqtt: MqttSettings, late_ms: int) -> None:
        self.mqtt = mqtt
        self.late_ms = late_ms
        self.readings: dict[tuple[str, int], tuple[str, str, int, bool]] = {}
        self.received: Counter[tuple[str, int]] = Counter()
        self.late = 0
        self.max_latency_ms = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with MqttClient(
                    self.mqtt, f"soak-monitor-{uuid.uuid4().hex[:6]}", receive_maximum=10_000
                ) as client:
                    await client.subscribe([f"{self.mqtt.prefix}/gw/+/dev/+/data"], qos=1)
                    self.ready.set()
                    async for message in client.messages():
                        self._note(message.topic, message.payload)
            except ConnectError:
                await asyncio.sleep(0.5)

    def _note(self, topic: str, payload: bytes) -> None:
        now = time.time_ns() // 1_000_000
        parsed = parse_topic(topic, self.mqtt.prefix)
        data = DeviceData.model_validate_json(payload)
        assert parsed.gateway and parsed.device
        key = (parsed.gateway, data.seq)
        self.received[key] += 1
        self.readings[key] = (data.site or "", parsed.device, data.ts, bool(data.values))
        if not data.historical:
            latency = now - data.ts
            self.max_latency_ms = max(self.max_latency_ms, latency)
            self.late += latency > self.late_ms


async def stored_keys(
    influx: InfluxServer, db: str, kinds: set[str]
) -> Counter[tuple[str, str, int]]:
    keys: Counter[tuple[str, str, int]] = Counter()
    async with httpx.AsyncClient(base_url=influx.url, timeout=120) as http:
        for kind in sorted(kinds):
            r = await http.get(
                "/query",
                params={
                    "db": db,
                    "epoch": "ms",
                    "q": f'SELECT * FROM "{kind}" GROUP BY site, device',
                },
            )
            r.raise_for_status()
            for series in r.json()["results"][0].get("series", []):
                tags = series["tags"]
                for row in series["values"]:
                    keys[(tags["site"], tags["device"], int(row[0]))] += 1
    return keys


async def spawn(service: str, config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shelterwatch.cli.main", service, "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


async def soak(minutes: float, late_s: float, work: Path) -> dict[str, Any]:
    mosquitto = MosquittoServer(work / "mosquitto")
    influx = InfluxServer(work / "influxdb")
    mosquitto.start()
    influx.start()
    procs: dict[str, asyncio.subprocess.Process] = {}
    log = work / "services.log"
    db = "soak"
    try:
        mqtt = MqttSettings(host="127.0.0.1", port=mosquitto.port, reconnect_max_s=2.0)
        collector_cfg = work / "collector.yaml"
        collector_cfg.write_text(
            yaml.safe_dump(
                {
                    "mqtt": {"host": mqtt.host, "port": mqtt.port},
                    "client_id": "soak-collector",
                    "store_url": f"influxdb://127.0.0.1:{influx.port}/{db}",
                    "spool": {"path": str(work / "spool.db")},
                }
            )
        )
        monitor = Monitor(mqtt, int(late_s * 1000))
        monitor_task = asyncio.create_task(monitor.run())
        await monitor.ready.wait()
        procs["collector"] = await spawn("collector", collector_cfg, log)
        deadline = time.monotonic() + 60
        while b"subscribed at" not in log.read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not subscribe; see {log}")
            await asyncio.sleep(0.2)
        async with Fleet(FleetSpec(shelters=3, sirens=4, tick_s=0.1)) as fleet:
            kinds = {d.profile.kind for d in fleet.devices}
            for site in fleet.gateway_config(mqtt.host, mqtt.port, mqtt.prefix):
                gw = site["gateway_id"]
                doc = gateway_yaml(site, mqtt) | {
                    "snapshot_interval_s": DEMO_SNAPSHOT_S / SPEEDUP,
                    "outbox": {"path": str(work / f"{gw}.db")},
                    "commands": {"replay_cache_path": str(work / f"{gw}-commands.db")},
                }
                for device in doc["devices"]:
                    device["interval_s"] = load_profile(device["profile"]).interval_s / SPEEDUP
                cfg = work / f"{gw}.yaml"
                cfg.write_text(yaml.safe_dump(doc))
                procs[gw] = await spawn("gateway", cfg, log)
            say(f"{len(procs) - 1} gateways and a collector running for {minutes:g} min")
            warmup = min(60.0, minutes * 60 / 5)
            await asyncio.sleep(warmup)
            first = {name: proc_figures(p.pid) for name, p in procs.items()}
            started = time.monotonic()
            end = started + minutes * 60 - warmup
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(60.0, left))
                say(f"{len(monitor.received)} messages so far, {monitor.late} late")
            last = {name: proc_figures(p.pid) for name, p in procs.items()}
            rate = len(monitor.received) / (time.monotonic() - started + warmup)
            # Silence the devices, let the outboxes run empty, stop the gateways cleanly.
            for site in fleet.sites:
                await fleet.fault(site, "comm_loss")
            await asyncio.sleep(5)
            for name, proc in procs.items():
                if name != "collector":
                    proc.send_signal(signal.SIGINT)
                    await proc.wait()
        # The collector has everything the broker carried once its queue is empty.
        expected = {(site, dev, ts) for site, dev, ts, has in monitor.readings.values() if has}
        deadline = time.monotonic() + 120
        while True:
            stored = await stored_keys(influx, db, kinds)
            lost_keys = expected - set(stored)
            if not lost_keys or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        duplicated = len(set(stored) - expected) + sum(n - 1 for n in stored.values())
        gaps = 0
        by_gateway: dict[str, list[int]] = {}
        for gw, seq in monitor.readings:
            by_gateway.setdefault(gw, []).append(seq)
        for seqs in by_gateway.values():
            gaps += (max(seqs) + 1) - len(seqs)
        monitor_task.cancel()
        growth = {
            name: {
                "rss_kb": [first[name]["rss_kb"], last[name]["rss_kb"]],
                "fds": [first[name]["fds"], last[name]["fds"]],
            }
            for name in first
        }
        collector_rss = growth["collector"]["rss_kb"]
        gateway_rss = [g["rss_kb"] for n, g in growth.items() if n != "collector"]
        return {
            "minutes": minutes,
            "messages": len(monitor.received),
            "messages_per_s": round(rate, 1),
            "readings_expected": len(expected),
            "lost": len(lost_keys) + gaps,
            "duplicated": duplicated,
            "redelivered_at_broker": sum(n - 1 for n in monitor.received.values()),
            "late": monitor.late,
            "late_threshold_s": late_s,
            "max_latency_ms": monitor.max_latency_ms,
            "collector_rss_growth_kb": collector_rss[1] - collector_rss[0],
            "gateway_rss_growth_kb_max": max(b - a for a, b in gateway_rss),
            "fd_growth_max": max(g["fds"][1] - g["fds"][0] for g in growth.values()),
            # Readings stored exactly once over the readings the broker carried (the limit
            # measured in the same run): 1.0 is the promise.
            "ratio": round((len(expected) - len(lost_keys) - gaps) / len(expected), 6)
            if expected
            else 1.0,
            "per_service": growth,
        }
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        mosquitto.stop()
        influx.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    parser.add_argument("--late-s", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sw-soak-") as tmp:
        result = asyncio.run(soak(args.minutes, args.late_s, Path(tmp)))
    ok = result["lost"] == 0 and result["duplicated"] == 0
    say("PASS" if ok else "FAIL: messages lost or duplicated")
    print(json.dumps(result, separators=(",", ":")))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
