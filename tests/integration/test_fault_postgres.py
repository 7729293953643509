"""PostgreSQL crashes during command dispatch: no command unexplained, none sent twice.

A private PostgreSQL (``servers.PostgresServer``: Debian's binaries, its own ``initdb`` in a
temp dir, a free port; never the machine's shared server) under a real control service
(uvicorn), the session's Mosquitto, and a fake gateway that answers as the test says. The
server is stopped in immediate mode (SIGQUIT: every backend drops its connections at once,
crash recovery at the next start) twice:

1. after commands and a siren activation were published, and the gateway answers them while
   the database is down: the answers must be in the records once it is back (the command
   link acknowledges an answer to the broker only after the database took it);
2. in the middle of a burst of commands being submitted and published.

Meanwhile the API must answer 503 with a clear message, never a 500. At the end every command
the gateway received is in the database with a final, readable state; every command the API
accepted (202) was received exactly once; and the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from control_helpers import PASSWORDS, FakeGateway, bearer, control_settings, create_users, login
from control_helpers import serve as serve_control
from platform_helpers import mqtt_settings
from servers import MosquittoServer, PostgresServer, ServerError, wait_until

from control.auth import Role
from control.commands import FINAL

pytestmark = pytest.mark.integration

GW = "gw-shelter-01"
SIREN_GW = "gw-siren-01"
UNREACHABLE = "the control database is unreachable"
FINAL_STATES = {s.value for s in FINAL}


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(tmp_path / "postgres")
    except ServerError as exc:
        if "no PostgreSQL server binaries" in str(exc):
            pytest.skip(f"{exc}")
        raise
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextlib.asynccontextmanager
async def control_on(
    postgres: PostgresServer, mosquitto: MosquittoServer, tmp: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeGateway, dict[Role, dict[str, str]]]]:
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute('CREATE DATABASE "control"')
    finally:
        await conn.close()
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"pgf{tag}/v1")
    settings = control_settings(
        postgres.url_for("control"),
        f"sqlite:///{tmp / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        sirens={"sweep_interval_s": 0.2},
    )
    await create_users(settings)
    async with (
        FakeGateway(mqtt) as gateway,
        serve_control(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as api,
    ):
        tokens = {r: bearer(await login(api, r.value, PASSWORDS[r])) for r in Role}
        yield api, gateway, tokens


async def send(api: httpx.AsyncClient, token: dict[str, str], n: int) -> httpx.Response:
    body = {
        "gateway": GW,
        "device": "vent",
        "action": "write",
        "params": {"point": "n", "value": n},
    }
    return await api.post("/api/v1/commands", json=body, headers=token)


async def crash_for(postgres: PostgresServer, seconds: float) -> None:
    """Immediate shutdown, ``seconds`` down, start again on the same port."""
    await asyncio.to_thread(postgres.crash)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(postgres.start)


def assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, f"{resp.status_code}: {resp.text[:500]}"
    assert UNREACHABLE in resp.json()["detail"], resp.text


async def test_postgres_crash_during_dispatch_loses_and_repeats_nothing(
    postgres: PostgresServer, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    async with control_on(postgres, mosquitto, tmp_path) as (api, gateway, tokens):
        officer, commander = tokens[Role.DUTY_OFFICER], tokens[Role.COMMANDER]
        siren = {
            "id": "siren-01",
            "name": "siren one",
            "site": "siren-01",
            "gateway": SIREN_GW,
            "device": "siren",
            "lat": 36.07,
            "lon": 120.38,
            "radius_m": 800,
        }
        resp = await api.post("/api/v1/sirens", json=siren, headers=commander)
        assert resp.status_code == 201, resp.text

        # -- 1. published, then answered while the database is down -----------------------
        first = []
        for n in range(3):
            resp = await send(api, officer, n)
            assert resp.status_code == 202, resp.text
            first.append(resp.json()["id"])
        resp = await api.post(
            "/api/v1/activations",
            json={"kind": "silent_test", "sirens": ["siren-01"], "reason": "weekly test"},
            headers=commander,
        )
        assert resp.status_code == 202, resp.text
        activation = resp.json()["id"]
        await wait_until(lambda: len(gateway.received) == 4, 15, "four commands at the gateway")

        async def all_sent() -> bool:
            for cid in first:
                detail = (await api.get(f"/api/v1/commands/{cid}", headers=officer)).json()
                if "sent" not in [e["state"] for e in detail["events"]]:
                    return False
            return True

        await wait_until(all_sent, 10, "the first commands recorded as sent")

        await asyncio.to_thread(postgres.crash)
        # The API says what is wrong: 503 with a message, not a 500.
        assert_unavailable(await api.get("/api/v1/commands", headers=officer))
        assert_unavailable(await api.get(f"/api/v1/activations/{activation}", headers=officer))
        assert_unavailable(await send(api, officer, 99))
        assert (await api.get("/api/v1/health")).status_code == 200
        # The gateway answers every command meanwhile.
        for cid in first:
            await gateway.ack(GW, cid, "accepted")
            await gateway.ack(GW, cid, "succeeded", detail=f"done {cid[-6:]}")
        ((_gw, siren_cmd),) = gateway.commands("siren.activate")
        await gateway.ack(
            SIREN_GW, siren_cmd.id, "succeeded", device="siren", outcome="test_passed"
        )
        await gateway.ack(SIREN_GW, siren_cmd.id, "succeeded")
        await asyncio.sleep(1.5)  # the control service tries, and fails, to record them
        await asyncio.to_thread(postgres.start)

        async def answered() -> bool:
            resp = await api.get(f"/api/v1/activations/{activation}", headers=officer)
            if resp.status_code != 200 or not resp.json()["final"]:
                return False
            for cid in first:
                resp = await api.get(f"/api/v1/commands/{cid}", headers=officer)
                if resp.status_code != 200 or resp.json()["state"] != "succeeded":
                    return False
            return True

        await wait_until(answered, 20, "the answers given while the database was down recorded")
        act = (await api.get(f"/api/v1/activations/{activation}", headers=officer)).json()
        assert [t["state"] for t in act["targets"]] == ["test_passed"], act
        for cid in first:
            detail = (await api.get(f"/api/v1/commands/{cid}", headers=officer)).json()
            states = [e["state"] for e in detail["events"]]
            assert states == ["pending", "sent", "accepted", "succeeded"], (cid, states)

        # -- 2. a crash in the middle of a burst of submissions -----------------------------
        before = len(gateway.received)
        accepted: list[str] = []
        refused: list[httpx.Response] = []

        async def submit(n: int) -> None:
            resp = await send(api, officer, 100 + n)
            if resp.status_code == 202:
                accepted.append(resp.json()["id"])
            else:
                refused.append(resp)

        async def crash_when_publishing() -> None:
            # Once the first of the burst is answered, with the rest on their way: waiting
            # only for the first publish crashed the database, once, before any answer.
            await wait_until(
                lambda: accepted and len(gateway.received) > before, 15, "the burst under way"
            )
            await crash_for(postgres, 1.0)

        await asyncio.gather(crash_when_publishing(), *(submit(n) for n in range(30)))
        for resp in refused:
            assert_unavailable(resp)
        assert accepted, "no command of the burst was accepted before the crash"
        # After the restart the gateway answers each command it got (once per receipt).
        answered_ids: set[str] = set()

        async def answer_all() -> bool:
            for gw, cmd in list(gateway.received[before:]):
                if cmd.id not in answered_ids:
                    answered_ids.add(cmd.id)
                    await gateway.ack(gw, cmd.id, "succeeded")
            ids = [c.id for _g, c in gateway.received[before:]]
            if not set(accepted) <= set(ids):
                return False
            for cid in set(ids) | set(accepted):
                resp = await api.get(f"/api/v1/commands/{cid}", headers=officer)
                if resp.status_code != 200 or resp.json()["state"] not in FINAL_STATES:
                    return False
            return True

        await wait_until(answer_all, 30, "every command of the burst at a final state")

        # -- the end: nothing lost, nothing twice, every outcome readable ------------------
        counts = collections.Counter(c.id for _g, c in gateway.received)
        twice = {cid: n for cid, n in counts.items() if n > 1}
        assert not twice, f"published more than once: {twice}"
        resp = await api.get("/api/v1/commands?limit=1000", headers=officer)
        assert resp.status_code == 200, resp.text
        recorded: dict[str, dict[str, Any]] = {r["id"]: r for r in resp.json()}
        unrecorded = set(counts) - set(recorded)
        assert not unrecorded, f"the gateway got commands the database does not know: {unrecorded}"
        open_ones = {cid: r["state"] for cid, r in recorded.items() if r["state"] not in FINAL}
        assert not open_ones, f"commands left without an outcome: {open_ones}"
        for cid, record in recorded.items():
            if cid in counts:
                assert record["state"] == "succeeded", record
            else:  # recorded, never published: it must say why
                assert record["state"] in {"expired", "failed", "cancelled"}, record
                assert record["detail"], record
        resp = await api.get("/api/v1/audit/verify", headers=commander)
        assert resp.status_code == 200, resp.text
        assert resp.json()["ok"], resp.json()
    print(
        f"postgres crash: {len(accepted)} of 30 accepted in the burst, {len(refused)} refused "
        f"(503); {len(counts)} commands published once each; {time.monotonic() - started:.1f} s"
    )
