"""Siren fan-out: from the API call to the last siren's confirmed start, against the broker's
own round-trip floor for the same messages, measured in one run.

    bench ──HTTP──▶ control ──MQTT──▶ Mosquitto ──▶ 50 gateways ──Modbus TCP──▶ 50 banks × 20 sirens
          ◀───────────────────── per-siren "started" acks ◀────────────────────┘

The simulated sirens (``SimBank``: one pymodbus server per gateway, one unit per siren) run in
one process, the 50 gateways in another, and the control service (uvicorn, on PostgreSQL as in
production, or SQLite with ``--db sqlite``) with the observer in this one.

1. floor: a bare publisher sends one QoS 1 message to each of the 50 gateway command topics;
   a bare responder subscribed to them answers each at once with one QoS 1 message per siren
   (20), and the publisher's own subscription counts them. The floor is the time from the
   first publish to the last answer: the broker's round trip for the same message pattern,
   with no work in between.
2. fan-out: ``POST /api/v1/activations`` (an audible test of the test tone to the group
   "all"), timed until an observer subscribed to ``{p}/gw/+/cmd/ack`` has seen a ``started``
   answer for every siren: each controller confirmed its sound through its own state
   register. The control service's record of the last start is reported too.

The ratio is floor over fan-out (1.0 would be a platform that adds nothing). A first run warms
up and is not counted. Goal: every siren
confirmed within 2 s of the API call.

Usage: .venv/bin/python bench/fanout.py [--gateways 50] [--sirens-per-gateway 20] [--runs 3]
                                      [--db postgresql|sqlite]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from servers import MosquittoServer

from control.auth import Role
from shelterwatch.config import MqttSettings
from shelterwatch.contract import CommandAck, SirenOutcome
from shelterwatch.signing import generate_keypair

GOAL_S = 2.0
PREFIX = "shelterwatch/v1"
# The regular poll of every siren is background load here: the runner confirms a start with
# its own fast reads, so a slow poll keeps the 1,000 sirens from drowning the two cores.
POLL_INTERVAL_S = 10.0


# ---------------------------------------------------------------------------- the fleet process


def _fleet_process(gateways: int, per_gateway: int, conn: Connection) -> None:
    from firmware_sim import Fleet, FleetSpec

    async def main() -> None:
        spec = FleetSpec(
            shelters=0, sirens=gateways * per_gateway, sirens_per_server=per_gateway, base_port=0
        )
        async with Fleet(spec) as fleet:
            conn.send(fleet.gateway_config("127.0.0.1", 0, PREFIX))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


# ------------------------------------------------------------------------- the gateways process


def _gateways_process(configs: list[dict[str, Any]], conn: Connection) -> None:
    from gateway import Gateway, GatewaySettings

    async def main() -> None:
        gateways = [Gateway(GatewaySettings.model_validate(c)) for c in configs]
        tasks = [asyncio.create_task(g.run()) for g in gateways]
        conn.send("started")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def gateway_settings(
    site: dict[str, Any], port: int, public_key: str, data: Path
) -> dict[str, Any]:
    gw = site["gateway_id"]
    return {
        "gateway_id": gw,
        "site": site["site"],
        "mqtt": {"host": "127.0.0.1", "port": port, "prefix": PREFIX},
        "outbox": {"path": str(data / f"{gw}-outbox.db")},
        "commands": {"public_key": public_key, "replay_cache_path": str(data / f"{gw}-cmd.db")},
        "devices": [
            {
                "id": d["id"],
                "profile": d["profile"],
                "unit_id": d["unit_id"],
                "interval_s": POLL_INTERVAL_S,
                "transport": {"type": "tcp", "host": d["host"], "port": d["port"]},
            }
            for d in site["devices"]
        ],
    }


def inventory_csv(sites: list[dict[str, Any]]) -> str:
    rows = ["id,name,site,gateway,device,district,lat,lon,radius_m,profile,enabled"]
    for n, site in enumerate(sites):
        for d in site["devices"]:
            rows.append(
                f"{d['id']},{d['id']},{site['site']},{site['gateway_id']},{d['id']},"
                f"district-{n % 5:02d},30.{n:04d},120.{n:04d},1500,siren,true"
            )
    return "\n".join(rows) + "\n"


# -------------------------------------------------------------------------------- the observer


class AckObserver:
    """A bare paho client on every gateway's ack topic: records when each siren started."""

    def __init__(self, port: int) -> None:
        self.started: dict[str, float] = {}
        # When each gateway's command passed the broker: splits the control service's share
        # of the time from the gateways' share.
        self.commands: list[float] = []
        self.expected = 0
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4()}")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe([(f"{PREFIX}/gw/+/cmd/ack", 1), (f"{PREFIX}/gw/+/cmd", 1)])
        self._client.loop_start()

    def reset(self, expected: int) -> None:
        with self._lock:
            self.started, self.expected, self.commands = {}, expected, []
            self.done.clear()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if msg.topic.endswith("/cmd"):
            with self._lock:
                self.commands.append(now)
            return
        ack = CommandAck.model_validate_json(msg.payload)
        if ack.device is None or ack.outcome is not SirenOutcome.STARTED:
            return
        gateway = msg.topic.split("/")[-3]
        with self._lock:
            self.started.setdefault(f"{gateway}/{ack.device}", now)
            if len(self.started) >= self.expected:
                self.done.set()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


# --------------------------------------------------------------------------------- the floor


def broker_floor(port: int, gateways: int, per_gateway: int) -> float:
    """First publish to last answer of the same fan-out with a bare responder."""
    total = gateways * per_gateway
    got = 0
    done = threading.Event()
    lock = threading.Lock()
    prefix = f"floor-{uuid.uuid4().hex[:8]}"
    answer = json.dumps({"id": "x", "state": "running", "outcome": "started", "ts": 0}).encode()

    responder = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-responder")

    def respond(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        gw = msg.topic.split("/")[-2]
        for _ in range(per_gateway):
            c.publish(f"{prefix}/gw/{gw}/cmd/ack", answer, qos=1)

    responder.on_message = respond
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-publisher")

    def count(_c: paho.Client, _u: object, _msg: paho.MQTTMessage) -> None:
        nonlocal got
        with lock:
            got += 1
            if got >= total:
                done.set()

    publisher.on_message = count
    subscribed = threading.Event()
    publisher.on_subscribe = lambda *_a: subscribed.set()
    responder_ready = threading.Event()
    responder.on_subscribe = lambda *_a: responder_ready.set()
    for client in (responder, publisher):
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", port)
        client.loop_start()
    responder.subscribe(f"{prefix}/gw/+/cmd", qos=1)
    publisher.subscribe(f"{prefix}/gw/+/cmd/ack", qos=1)
    if not (subscribed.wait(10) and responder_ready.wait(10)):
        raise RuntimeError("the floor clients did not subscribe")
    command = b"x" * 600  # about the size of a signed siren order
    t0 = time.perf_counter()
    for gw in range(gateways):
        publisher.publish(f"{prefix}/gw/gw-{gw:03d}/cmd", command, qos=1)
    if not done.wait(60):
        raise RuntimeError(f"the floor saw {got} of {total} answers")
    elapsed = time.perf_counter() - t0
    for client in (responder, publisher):
        client.loop_stop()
        client.disconnect()
    return elapsed


# ------------------------------------------------------------------------------- the fan-out


async def fan_out(
    api: str, observer: AckObserver, total: int, runs: int
) -> tuple[list[float], list[float]]:
    """Seconds to the last observed start, and to the control service's last recorded start."""
    observed: list[float] = []
    recorded: list[float] = []
    async with httpx.AsyncClient(base_url=api, timeout=60) as client:
        duty = bearer(await login(client, "duty_officer", PASSWORDS[Role.DUTY_OFFICER]))
        # Run 0 warms up (connection pools, first queries, the gateways' first commands) and
        # is not counted: the figure is for a platform that is already running.
        for run in range(runs + 1):
            observer.reset(total)
            t0 = time.perf_counter()
            t0_ms = time.time() * 1000
            resp = await client.post(
                "/api/v1/activations",
                headers=duty,
                json={
                    "kind": "audible_test",
                    "groups": ["all"],
                    "reason": f"fan-out benchmark, run {run}",
                },
            )
            resp.raise_for_status()
            activation = resp.json()["id"]
            if not await asyncio.get_running_loop().run_in_executor(None, observer.done.wait, 30):
                raise RuntimeError(
                    f"run {run}: only {len(observer.started)} of {total} sirens confirmed a "
                    "start within 30 s"
                )
            if run > 0:
                observed.append(max(observer.started.values()) - t0)
            starts = sorted(observer.started.values())
            cmds = sorted(observer.commands)
            print(
                f"  run {run}{' (warm-up)' if run == 0 else ''}: commands on the broker "
                f"{(cmds[0] - t0) * 1000:.0f}–"
                f"{(cmds[-1] - t0) * 1000:.0f} ms; starts p50 "
                f"{(starts[len(starts) // 2] - t0) * 1000:.0f} ms, p90 "
                f"{(starts[int(len(starts) * 0.9)] - t0) * 1000:.0f} ms, last "
                f"{(starts[-1] - t0) * 1000:.0f} ms",
                file=sys.stderr,
            )
            # The control service's own record of the starts (it may trail the observer).
            deadline = time.monotonic() + 30
            while True:
                doc = (await client.get(f"/api/v1/activations/{activation}", headers=duty)).json()
                starts = [t["started"] for t in doc["targets"] if t["started"] is not None]
                if len(starts) >= total or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if run > 0:
                recorded.append((max(starts) - t0_ms) / 1000 if starts else float("nan"))
            resp = await client.post(
                f"/api/v1/activations/{activation}/cancel",
                headers=duty,
                json={"comment": "benchmark run over"},
            )
            resp.raise_for_status()
            # Let every siren go quiet before the next run.
            while True:
                doc = (await client.get(f"/api/v1/activations/{activation}", headers=duty)).json()
                if doc["final"] or time.monotonic() > deadline + 30:
                    break
                await asyncio.sleep(0.2)
    return observed, recorded


PG_ADMIN_URL = os.environ.get(
    "SHELTERWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.asynccontextmanager
async def control_database(kind: str, data: Path) -> AsyncIterator[str]:
    """A new control database of the bench's own (dropped afterwards); yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{data / 'control.db'}"
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"sw_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def run_platform(
    port: int, configs: list[dict[str, Any]], private_key: str, data: Path, runs: int, db: str
) -> tuple[list[float], list[float]]:
    async with control_database(db, data) as url:
        return await _run_platform(port, configs, private_key, data, runs, url)


async def _run_platform(
    port: int, configs: list[dict[str, Any]], private_key: str, data: Path, runs: int, url: str
) -> tuple[list[float], list[float]]:
    from pydantic import SecretStr

    total = sum(len(c["devices"]) for c in configs)
    settings = control_settings(
        url,
        f"sqlite:///{data / 'store.db'}",
        mqtt=MqttSettings(host="127.0.0.1", port=port, prefix=PREFIX),
        command_private_key=SecretStr(private_key),
    )
    await create_users(settings, (Role.ADMIN, Role.DUTY_OFFICER))
    observer = AckObserver(port)
    try:
        async with serve(settings) as api:
            async with httpx.AsyncClient(base_url=api, timeout=60) as client:
                admin = bearer(await login(client, "admin", PASSWORDS[Role.ADMIN]))
                resp = await client.post(
                    "/api/v1/sirens/import",
                    headers=admin,
                    json={"format": "csv", "content": inventory_csv(configs)},
                )
                resp.raise_for_status()
            return await fan_out(api, observer, total, runs)
    finally:
        observer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--sirens-per-gateway", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    # A line per siren per run would bury the figures; the bench reports what matters.
    logging.basicConfig(level=logging.ERROR)
    n_gw, per = args.gateways, args.sirens_per_gateway
    total = n_gw * per
    private_key, public_key = generate_keypair()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        with MosquittoServer(data / "mosquitto") as mosquitto:
            print(f"floor: {n_gw} commands, {total} answers through Mosquitto ...", file=sys.stderr)
            floors = [broker_floor(mosquitto.port, n_gw, per) for _ in range(args.runs)]
            floor = statistics.median(floors)
            print(f"  {floor * 1000:.0f} ms (median of {args.runs})", file=sys.stderr)

            print(f"starting {total} simulated sirens in {n_gw} banks ...", file=sys.stderr)
            fleet_conn, fleet_child = ctx.Pipe()
            fleet = ctx.Process(target=_fleet_process, args=(n_gw, per, fleet_child), daemon=True)
            fleet.start()
            sites: list[dict[str, Any]] = fleet_conn.recv()
            configs = [gateway_settings(s, mosquitto.port, public_key, data) for s in sites]
            gw_conn, gw_child = ctx.Pipe()
            gws = ctx.Process(target=_gateways_process, args=(configs, gw_child), daemon=True)
            gws.start()
            gw_conn.recv()
            try:
                print("fan-out through the platform ...", file=sys.stderr)
                observed, recorded = asyncio.run(
                    run_platform(mosquitto.port, configs, private_key, data, args.runs, args.db)
                )
            finally:
                for conn, proc in ((gw_conn, gws), (fleet_conn, fleet)):
                    conn.send("stop")
                    proc.join(30)
                    if proc.is_alive():
                        proc.kill()
    fan = statistics.median(observed)
    print(
        f"  last siren confirmed {fan * 1000:.0f} ms after the API call (median of "
        f"{args.runs}: {', '.join(f'{x * 1000:.0f}' for x in observed)} ms)",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "bench": "fanout",
                "gateways": n_gw,
                "sirens": total,
                "runs": args.runs,
                "database": args.db,
                "floor_ms": round(floor * 1000, 1),
                "floor_runs_ms": [round(x * 1000, 1) for x in floors],
                "last_start_ms": round(fan * 1000, 1),
                "last_start_runs_ms": [round(x * 1000, 1) for x in observed],
                "control_recorded_last_start_ms": [round(x * 1000, 1) for x in recorded],
                "ratio": round(floor / fan, 3),
                "goal": {"last_start_ms": GOAL_S * 1000},
                "meets_goal": fan <= GOAL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
