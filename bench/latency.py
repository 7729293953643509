"""Latency, p50 and p99 over repeated trials, against the floor of the path, in one run.

1. sensor change → alert on the broker:

       firmware_sim (pymodbus) ◀─poll─ gateway ─MQTT─▶ Mosquitto ─▶ collector + alert engine
            ▲ physics change                                            │ (InfluxDB store)
            └── trial starts                   observer ◀── alert ──────┘ trial ends

   The ventilation fan of a simulated shelter faults (``fan_fault`` in the physics, registers
   refreshed at once) and is repaired, ``--trials`` times each way; the time runs to the
   raised (or cleared) alert on ``{p}/alert/...``. The rule is ``fan_fault`` without a hold
   time, so the figure is the path's own latency. The floor is one poll interval plus the
   broker's round trip (a bare publish to a bare subscriber, median): a reading can wait up
   to one interval for the next poll, and must then cross the broker at least once. Each
   change comes at a random point of the poll cycle.

2. siren API call → register write on the simulated siren:

       POST /api/v1/activations ─▶ control ─signed siren.activate─▶ Mosquitto ─▶ gateway
                                                                     ─Modbus write─▶ siren

   An audible test of one siren, cancelled after each trial; the time runs from the API call
   to the first register write the simulated controller receives. Its floor is the broker's
   round trip.

The fleet and the gateways run in one child process, the collector in another (the
``shelterwatch collector`` command), the control service and the observer in this one.
The ratio is floor over p99 of the sensor-to-alert path (1.0: the platform adds nothing
beyond the poll and the broker). Issue 9 sets no goal for it: the figures are reported.

Usage: .venv/bin/python bench/latency.py [--trials N] [--interval S] [--siren-trials N]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from servers import InfluxServer, MosquittoServer

from control.auth import Role
from shelterwatch.config import MqttSettings
from shelterwatch.contract import Alert
from shelterwatch.signing import generate_keypair

PREFIX = "shelterwatch/v1"
SITE = "shelter-01"
SIREN = "siren-01"
RULES = """\
version: 1
rules:
  - name: fan_fault
    kind: threshold
    severity: major
    device_kind: ventilation
    point: fan_fault
    equals: true
    message: "fan fault (latency benchmark: no hold time)"
"""


def _quantile(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------- child: fleet and gateways


def _edge_process(port: int, interval: float, public_key: str, data: str, conn: Connection) -> None:
    from firmware_sim import Fleet, FleetSpec
    from gateway import Gateway, GatewaySettings

    async def main() -> None:
        async with Fleet(FleetSpec(shelters=1, sirens=1, base_port=0)) as fleet:
            writes: list[float] = []
            siren = fleet.device(SIREN, "siren")
            original = siren._write

            def recording(*args: Any) -> Any:
                writes.append(time.time())  # the controller has the write in hand
                return original(*args)

            siren._write = recording  # type: ignore[method-assign]
            gateways = []
            for site in fleet.gateway_config("127.0.0.1", port, PREFIX):
                gw = site["gateway_id"]
                doc = {
                    "gateway_id": gw,
                    "site": site["site"],
                    "mqtt": {"host": "127.0.0.1", "port": port, "prefix": PREFIX},
                    "outbox": {"path": f"{data}/{gw}-outbox.db"},
                    "commands": {
                        "public_key": public_key,
                        "replay_cache_path": f"{data}/{gw}-cmd.db",
                    },
                    "devices": [
                        {
                            "id": d["id"],
                            "profile": d["profile"],
                            "unit_id": d["unit_id"],
                            "interval_s": interval,
                            "transport": {"type": "tcp", "host": d["host"], "port": d["port"]},
                        }
                        for d in site["devices"]
                    ],
                }
                gateways.append(Gateway(GatewaySettings.model_validate(doc)))
            tasks = [asyncio.create_task(g.run()) for g in gateways]
            vent = fleet.shelters[SITE].vent
            loop = asyncio.get_running_loop()
            conn.send(fleet.gateway_config("127.0.0.1", port, PREFIX))
            while True:
                order = await loop.run_in_executor(None, conn.recv)
                if order == "stop":
                    break
                if order in ("fault", "repair"):
                    vent.fan_fault = order == "fault"
                    fleet.device(SITE, "vent").refresh()
                    conn.send(time.time())
                elif order == "writes":
                    conn.send(list(writes))
                    writes.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


# ------------------------------------------------------------------------------ observers


class AlertObserver:
    """A bare paho client on the alert topics: when each raise and clear arrived."""

    def __init__(self, port: int) -> None:
        self.events: list[tuple[bool, float]] = []
        self.changed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4()}")
        self._client.on_message = self._on_message
        ready = threading.Event()
        self._client.on_subscribe = lambda *_a: ready.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"{PREFIX}/alert/{SITE}/fan_fault/+", qos=1)
        self._client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("the alert observer did not subscribe")

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        now = time.time()
        if msg.retain or not msg.payload:
            return
        self.events.append((Alert.model_validate_json(msg.payload).active, now))
        self.changed.set()

    def wait_for(self, active: bool, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for state, at in self.events:
                if state is active:
                    self.events.clear()
                    return at
            self.changed.wait(0.05)
            self.changed.clear()
        raise RuntimeError(f"no {'raised' if active else 'cleared'} alert within {timeout:g} s")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def broker_round_trip(port: int, n: int = 50) -> float:
    """Median seconds from a bare QoS 1 publish to its arrival at a bare subscriber."""
    got = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rtt-s-{uuid.uuid4()}")
    sub.on_message = lambda *_a: got.set()
    ready = threading.Event()
    sub.on_subscribe = lambda *_a: ready.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/rtt", qos=1)
    sub.loop_start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rtt-p-{uuid.uuid4()}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    ready.wait(10)
    times = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        pub.publish("bench/rtt", b"x" * 200, qos=1)
        if not got.wait(5):
            raise RuntimeError("the round-trip probe was lost")
        times.append(time.perf_counter() - t0)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return statistics.median(times)


# ------------------------------------------------------------------------------- phases


def sensor_to_alert(
    edge: Connection, observer: AlertObserver, trials: int, interval: float
) -> list[float]:
    rng = random.Random(9)
    out = []
    for _ in range(trials):
        for order, active in (("fault", True), ("repair", False)):
            # Without this the trials lock onto the poll phase: each change would land just
            # after a poll (the previous alert came from one) and wait a whole interval.
            time.sleep(rng.uniform(0, interval))
            edge.send(order)
            changed = edge.recv()
            out.append(observer.wait_for(active, 30) - changed)
    return out


async def api_to_write(
    port: int, data: Path, private_key: str, sites: list[dict[str, Any]], edge: Connection, n: int
) -> list[float]:
    from pydantic import SecretStr

    settings = control_settings(
        f"sqlite:///{data / 'control.db'}",
        f"sqlite:///{data / 'control-store.db'}",
        mqtt=MqttSettings(host="127.0.0.1", port=port, prefix=PREFIX),
        command_private_key=SecretStr(private_key),
    )
    await create_users(settings, (Role.ADMIN, Role.DUTY_OFFICER))
    rows = ["id,name,site,gateway,device,district,lat,lon,radius_m,profile,enabled"]
    for site in sites:
        for d in site["devices"]:
            if d["profile"] == "siren":
                rows.append(
                    f"{site['site']},{site['site']},{site['site']},{site['gateway_id']},"
                    f"{d['id']},district-01,30.1,120.1,1500,siren,true"
                )
    out = []
    async with serve(settings) as api, httpx.AsyncClient(base_url=api, timeout=60) as client:
        admin = bearer(await login(client, "admin", PASSWORDS[Role.ADMIN]))
        resp = await client.post(
            "/api/v1/sirens/import",
            headers=admin,
            json={"format": "csv", "content": "\n".join(rows) + "\n"},
        )
        resp.raise_for_status()
        duty = bearer(await login(client, "duty_officer", PASSWORDS[Role.DUTY_OFFICER]))
        loop = asyncio.get_running_loop()
        for trial in range(n):
            edge.send("writes")
            await loop.run_in_executor(None, edge.recv)  # forget earlier writes
            t0 = time.time()
            resp = await client.post(
                "/api/v1/activations",
                headers=duty,
                json={"kind": "audible_test", "groups": ["all"], "reason": f"latency {trial}"},
            )
            resp.raise_for_status()
            activation = resp.json()["id"]
            writes: list[float] = []
            deadline = time.monotonic() + 10
            while not writes and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                edge.send("writes")
                writes = await loop.run_in_executor(None, edge.recv)
            if not writes:
                raise RuntimeError(f"trial {trial}: the siren received no write within 10 s")
            out.append(min(writes) - t0)
            resp = await client.post(
                f"/api/v1/activations/{activation}/cancel",
                headers=duty,
                json={"comment": "latency trial over"},
            )
            resp.raise_for_status()
            while True:  # quiet again before the next trial
                doc = (await client.get(f"/api/v1/activations/{activation}", headers=duty)).json()
                if doc["final"] or time.monotonic() > deadline + 20:
                    break
                await asyncio.sleep(0.1)
    return out


def _ms(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_quantile(xs, 0.5) * 1000, 1),
        "p99_ms": round(_quantile(xs, 0.99) * 1000, 1),
        "max_ms": round(max(xs) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=15, help="faults (and repairs) timed")
    parser.add_argument("--interval", type=float, default=0.5, help="the vent's poll interval")
    parser.add_argument("--siren-trials", type=int, default=8)
    args = parser.parse_args()
    private_key, public_key = generate_keypair()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        with MosquittoServer(data / "mosquitto") as mq, InfluxServer(data / "influxdb") as influx:
            rtt = broker_round_trip(mq.port)
            print(f"broker round trip {rtt * 1000:.2f} ms", file=sys.stderr)
            (data / "rules.yaml").write_text(RULES, encoding="utf-8")
            config = data / "collector.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "mqtt": {"host": "127.0.0.1", "port": mq.port, "prefix": PREFIX},
                        "client_id": "latency-collector",
                        "store_url": f"influxdb://127.0.0.1:{influx.port}/latency",
                        "alerts": {
                            "enabled": True,
                            "rules_path": str(data / "rules.yaml"),
                            "state_path": str(data / "alert-state.db"),
                        },
                    }
                ),
                encoding="utf-8",
            )
            import subprocess

            collector = subprocess.Popen(
                [sys.executable, "-m", "shelterwatch.cli.main", "collector", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            edge, child = ctx.Pipe()
            proc = ctx.Process(
                target=_edge_process,
                args=(mq.port, args.interval, public_key, str(data), child),
                daemon=True,
            )
            proc.start()
            observer = AlertObserver(mq.port)
            try:
                sites = edge.recv()
                time.sleep(3.0)  # gateways born, collector subscribed, first snapshots stored
                print(f"sensor change → alert, {args.trials} × 2 trials ...", file=sys.stderr)
                alert = sensor_to_alert(edge, observer, args.trials, args.interval)
                print(f"  {_ms(alert)}", file=sys.stderr)
                print(
                    f"siren API → register write, {args.siren_trials} trials ...", file=sys.stderr
                )
                siren = asyncio.run(
                    api_to_write(mq.port, data, private_key, sites, edge, args.siren_trials)
                )
                print(f"  {_ms(siren)}", file=sys.stderr)
            finally:
                observer.close()
                edge.send("stop")
                proc.join(20)
                if proc.is_alive():
                    proc.kill()
                collector.terminate()
                collector.wait(10)
    floor = args.interval + rtt
    a, s = _ms(alert), _ms(siren)
    print(
        json.dumps(
            {
                "bench": "latency",
                "figure": "sensor_to_alert_p99_ms",
                "poll_interval_s": args.interval,
                "broker_round_trip_ms": round(rtt * 1000, 2),
                "sensor_to_alert_trials": len(alert),
                "sensor_to_alert_p50_ms": a["p50_ms"],
                "sensor_to_alert_p99_ms": a["p99_ms"],
                "sensor_to_alert_max_ms": a["max_ms"],
                "limit": "poll interval + broker round trip",
                "floor_ms": round(floor * 1000, 1),
                "siren_api_to_write_trials": len(siren),
                "siren_api_to_write_p50_ms": s["p50_ms"],
                "siren_api_to_write_p99_ms": s["p99_ms"],
                "siren_floor_ms": round(rtt * 1000, 2),
                "ratio": round(floor / _quantile(alert, 0.99), 3),
                "goal": None,
                "meets_goal": None,
            }
        )
    )


if __name__ == "__main__":
    main()
