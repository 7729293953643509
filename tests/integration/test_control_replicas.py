"""Two control-service replicas over ONE PostgreSQL database and one broker, busy at once.

Each replica is a full ``create_app`` behind its own uvicorn, with the same settings (the same
signing key, database and broker) apart from its MQTT client ids: ``command_client_id`` and
``alerts.client_id``. So each replica has its own subscription to the gateways' answers, and
BOTH receive every answer: what they do with it must be idempotent.

What is proven, with values, not "it did not crash":

- a burst of concurrent mutating requests spread over both replicas leaves an unbroken audit
  chain with contiguous ``seq``, and every request and every answer audited exactly once;
- a command submitted while the broker is down is published exactly once when it is back,
  though both replicas reconnect and look for unsent commands (counted on the broker by a plain
  subscriber), and its answers are recorded once;
- a live alert approved on one replica while the other's sweep follows it, and a second
  approver tries on the other replica at the same moment, is dispatched once (one command per
  gateway on the broker), and each siren's answers are recorded and audited once.

Observation points (no bare sleeps): the test wraps ``CommandService.__aenter__`` (to know each
replica's service), ``CommandService._answer`` (each replica's handled answers) and
``CommandService._publish`` (each replica's publication passes), and the siren sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_helpers import (
    PASSWORDS,
    FakeGateway,
    bearer,
    control_settings,
    create_users,
    login,
    serve,
)
from platform_helpers import mqtt_settings
from pydantic import SecretStr
from servers import MosquittoServer, wait_until

from control import ControlSettings
from control.audit import AuditRecord, iter_records, read_head, verify_database
from control.auth import Role
from control.commands import CommandService
from control.db import Database
from control.sirens import tracking
from shelterwatch.config import MqttSettings
from shelterwatch.contract import SIREN_ACTIVATE, CommandRequest, cmd_ack_topic
from shelterwatch.mqtt_client import Message, MqttClient
from shelterwatch.signing import generate_keypair

# One PostgreSQL database for both replicas: replicas need it (SQLite is one process's).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

Json = dict[str, Any]


# -- observation points --------------------------------------------------------------------------


@dataclass
class Taps:
    """What each replica (named by its command client id) did, as it happened."""

    services: dict[str, CommandService] = field(default_factory=dict)
    # (client id, topic, payload) of every answer a replica finished handling.
    answers: list[tuple[str, str, bytes]] = field(default_factory=list)
    # (client id, command ids) of every publication pass a replica finished.
    publishes: list[tuple[str, list[str]]] = field(default_factory=list)
    # (client id, activation id, monotonic time) of every siren sweep of one activation.
    sweeps: list[tuple[str, str, float]] = field(default_factory=list)

    def handled(self, client_id: str) -> Counter[tuple[str, bytes]]:
        return Counter((t, p) for c, t, p in self.answers if c == client_id)


@pytest.fixture
def taps(monkeypatch: pytest.MonkeyPatch) -> Taps:
    found = Taps()
    enter, answer, publish = (
        CommandService.__aenter__,
        CommandService._answer,
        CommandService._publish,
    )
    sweep_one = tracking.sweep_one

    async def entering(self: CommandService) -> CommandService:
        found.services[self.client_id] = self
        return await enter(self)

    async def answering(self: CommandService, message: Message) -> None:
        await answer(self, message)
        found.answers.append((self.client_id, message.topic, message.payload))

    async def publishing(self: CommandService, client: MqttClient, due: list[Any]) -> None:
        await publish(self, client, due)
        found.publishes.append((self.client_id, [r.id for r in due]))

    async def sweeping(db: Database, commands: CommandService, *args: Any, **kw: Any) -> None:
        activation_id = args[-1]
        found.sweeps.append((commands.client_id, activation_id, time.monotonic()))
        await sweep_one(db, commands, *args, **kw)

    monkeypatch.setattr(CommandService, "__aenter__", entering)
    monkeypatch.setattr(CommandService, "_answer", answering)
    monkeypatch.setattr(CommandService, "_publish", publishing)
    monkeypatch.setattr(tracking, "sweep_one", sweeping)
    return found


# -- the replicas ---------------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    client: httpx.AsyncClient
    service: CommandService
    settings: ControlSettings

    async def post(self, token: dict[str, str], path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=token)

    async def get(self, token: dict[str, str], path: str, **params: Any) -> Any:
        resp = await self.client.get(path, params=params, headers=token)
        assert resp.status_code == 200, resp.text
        return resp.json()


@dataclass
class Pair:
    a: Replica
    b: Replica
    tokens: dict[Role, dict[str, str]]
    database_url: str
    mqtt: MqttSettings

    @property
    def both(self) -> tuple[Replica, Replica]:
        return self.a, self.b

    async def rows_after(self, seq: int) -> list[AuditRecord]:
        async with Database(self.database_url) as db:
            return [r async for r in iter_records(db, after_seq=seq)]

    async def head_seq(self) -> int:
        async with Database(self.database_url) as db:
            head = await read_head(db)
        return head.seq if head is not None else 0

    async def answers_handled_by_both(self, sent: list[tuple[str, bytes]], taps: Taps) -> None:
        """Wait until each replica has handled every answer in ``sent`` (each its own copy)."""
        want = Counter(sent)

        def done() -> bool:
            return all(not (want - taps.handled(r.service.client_id)) for r in (self.a, self.b))

        await wait_until(done, 20, f"both replicas to handle {len(sent)} answers")


@contextlib.asynccontextmanager
async def replicas(
    tmp_path: Path, database_url: str, mqtt: MqttSettings, taps: Taps, **overrides: Any
) -> AsyncIterator[Pair]:
    tag = uuid.uuid4().hex[:8]
    key = SecretStr(generate_keypair()[0])

    def settings(name: str) -> ControlSettings:
        return control_settings(
            database_url,
            f"sqlite:///{tmp_path / 'store.db'}",
            mqtt=mqtt,
            command_private_key=key,
            # The ids that must differ per replica: one MQTT session each.
            command_client_id=f"ctl-{name}-{tag}",
            alerts={"client_id": f"ctl-{name}-alerts-{tag}"},
            # As docs/scaling.md says: migrations run once, not by the replicas.
            migrate_on_start=False,
            **({"sirens": {"sweep_interval_s": 0.1}} | overrides),
        )

    sa, sb = settings("a"), settings("b")
    await create_users(sa)  # migrates the database, then one user per role
    async with (
        serve(sa) as url_a,
        serve(sb) as url_b,
        httpx.AsyncClient(base_url=url_a, timeout=30) as client_a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as client_b,
    ):
        a = Replica("a", client_a, taps.services[f"ctl-a-{tag}"], sa)
        b = Replica("b", client_b, taps.services[f"ctl-b-{tag}"], sb)
        for r in (a, b):
            await wait_until(r.service.connected.is_set, 10, f"replica {r.name} connected")
        # A session is a row in the database: a login on one replica works on both.
        tokens = {r: bearer(await login(client_a, r.value, PASSWORDS[r])) for r in Role}
        me = await client_b.get("/api/v1/auth/me", headers=tokens[Role.VIEWER])
        assert me.json()["username"] == "viewer"
        yield Pair(a, b, tokens, database_url, mqtt)


async def add_sirens(pair: Pair, sirens: list[tuple[str, str]]) -> None:
    for sid, gateway in sirens:
        body = {
            "id": sid,
            "name": f"post {sid}",
            "site": f"site-{sid}",
            "gateway": gateway,
            "device": f"dev-{sid}",
            "district": "north",
            "lat": 36.0,
            "lon": 120.0,
            "radius_m": 700,
        }
        resp = await pair.a.post(pair.tokens[Role.COMMANDER], "/api/v1/sirens", body)
        assert resp.status_code == 201, resp.text


# -- a gateway that answers -----------------------------------------------------------------------


class AnsweringGateway(FakeGateway):
    """Records every command and answers it as a healthy gateway would: ``accepted``; for a
    siren command each siren's final outcome (``outcome_for`` decides it); then ``succeeded``.
    ``sent`` keeps every answer published, to wait for both replicas to handle them."""

    def __init__(
        self, mqtt: MqttSettings, outcome_for: Callable[[str, CommandRequest], str] | None = None
    ) -> None:
        super().__init__(mqtt)
        self.sent: list[tuple[str, bytes]] = []
        self.answering = True
        self._outcome_for = outcome_for or (lambda _device, _cmd: "test_passed")

    async def __aenter__(self) -> AnsweringGateway:
        await super().__aenter__()
        return self

    async def _collect(self) -> None:
        async for message in self._client.messages():
            gateway = message.topic.split("/")[-2]
            cmd = CommandRequest.model_validate_json(message.payload)
            self.received.append((gateway, cmd))
            if self.answering:
                await self.answer(gateway, cmd)

    async def send_ack(self, gateway: str, command_id: str, state: str, **kw: Any) -> None:
        ack = await self.ack(gateway, command_id, state, **kw)
        self.sent.append((cmd_ack_topic(gateway, self.mqtt.prefix), ack.to_json()))

    async def resend(self, topic: str, payload: bytes) -> None:
        """The same answer again, byte for byte (a QoS 1 redelivery)."""
        await self._client.publish(topic, payload, qos=1)
        self.sent.append((topic, payload))

    async def answer(self, gateway: str, cmd: CommandRequest) -> None:
        await self.send_ack(gateway, cmd.id, "accepted")
        if cmd.siren is not None:
            for device in cmd.siren.sirens:
                outcome = self._outcome_for(device, cmd)
                state = "succeeded" if outcome in ("sounded", "test_passed") else "failed"
                await self.send_ack(gateway, cmd.id, state, device=device, outcome=outcome)
        await self.send_ack(gateway, cmd.id, "succeeded", detail="done")


def command_ids(rows: list[AuditRecord], action: str) -> Counter[str]:
    return Counter(json.loads(r.params)["id"] for r in rows if r.action == action)


async def assert_chain_whole(pair: Pair) -> int:
    """The chain verifies on both replicas and in the database; seq runs 1..n with no gap."""
    verdicts = [await r.get(pair.tokens[Role.COMMANDER], "/api/v1/audit/verify") for r in pair.both]
    async with Database(pair.database_url) as db:
        direct = await verify_database(db)
        seqs = [r.seq async for r in iter_records(db)]
    assert direct.ok, direct.reason
    assert seqs == list(range(1, len(seqs) + 1))
    for verdict in verdicts:
        assert verdict["ok"] is True, verdict
        assert verdict["first_bad_seq"] is None
    # Later rows (audit reads are not mutations, but the sweeps may append) only extend it.
    assert verdicts[0]["checked"] <= verdicts[1]["checked"] <= direct.checked == len(seqs)
    return len(seqs)


# -- 1: a burst over both replicas ----------------------------------------------------------------

BURST = 200
GATEWAYS = ["gw-r1", "gw-r2", "gw-r3", "gw-r4"]
BURST_SIRENS = [(f"s-r{n}", GATEWAYS[n % 4]) for n in range(8)]


async def test_a_burst_over_both_replicas_keeps_one_whole_chain_with_everything_once(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer, taps: Taps
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:8]}/v1")
    async with (
        AnsweringGateway(mqtt) as gw,
        replicas(tmp_path, database_url, mqtt, taps) as pair,
    ):
        await add_sirens(pair, BURST_SIRENS)
        before = await pair.head_seq()

        # 200 mutating requests at once, alternating replicas: user creations, commands and
        # silent tests (each an activation, a siren command, answers and their audit rows).
        kinds: dict[int, str] = {}

        async def one(i: int) -> httpx.Response:
            replica = pair.both[i % 2]
            match i % 5:
                case 0 | 1:
                    kinds[i] = "user"
                    body: Json = {
                        "username": f"user{i:03d}",
                        "role": "viewer",
                        "password": f"password-of-{i:03d}",
                    }
                    return await replica.post(pair.tokens[Role.ADMIN], "/api/v1/users", body)
                case 2 | 3:
                    kinds[i] = "command"
                    body = {
                        "gateway": GATEWAYS[i % 4],
                        "device": f"dev-{i:03d}",
                        "action": "write",
                        "params": {"point": "mode", "value": "filtered"},
                        "ttl_s": 120,
                    }
                    return await replica.post(
                        pair.tokens[Role.DUTY_OFFICER], "/api/v1/commands", body
                    )
                case _:
                    kinds[i] = "activation"
                    body = {
                        "kind": "silent_test",
                        "sirens": [BURST_SIRENS[i % 8][0]],
                        "reason": f"silent test {i:03d}",
                    }
                    return await replica.post(
                        pair.tokens[Role.MAINTAINER], "/api/v1/activations", body
                    )

        answers = await asyncio.gather(*(one(i) for i in range(BURST)))
        wanted = {"user": 201, "command": 202, "activation": 202}
        assert [(i, r.status_code) for i, r in enumerate(answers)] == [
            (i, wanted[kinds[i]]) for i in range(BURST)
        ], [r.text for r in answers if r.status_code >= 400][:3]
        n = Counter(kinds.values())
        assert n == {"user": 80, "command": 80, "activation": 40}
        command_ids_sent = {r.json()["id"] for i, r in enumerate(answers) if kinds[i] == "command"}
        activations = {r.json()["id"] for i, r in enumerate(answers) if kinds[i] == "activation"}

        # Every command (80 direct, 40 silent tests: one gateway each) reaches the broker once.
        await wait_until(lambda: len(gw.received) >= 120, 30, "120 commands on the broker")

        async def settled() -> bool:
            page = await pair.a.get(pair.tokens[Role.VIEWER], "/api/v1/activations", limit=500)
            return sum(1 for x in page if x["state"] == "completed") == 40

        await wait_until(settled, 30, "40 silent tests completed")
        await pair.answers_handled_by_both(gw.sent, taps)
        received = Counter(cmd.id for _g, cmd in gw.received)
        assert len(received) == 120 and set(received.values()) == {1}, received.most_common(3)
        assert command_ids_sent <= received.keys()

        for cid in command_ids_sent:
            detail = await pair.b.get(pair.tokens[Role.VIEWER], f"/api/v1/commands/{cid}")
            # (An answer may be recorded before the broker's PUBACK is: order aside.)
            assert Counter(e["state"] for e in detail["events"]) == {
                "pending": 1,
                "sent": 1,
                "accepted": 1,
                "succeeded": 1,
            }, detail

        rows = await pair.rows_after(before)
        total = await assert_chain_whole(pair)
        assert total == before + len(rows)

        # Every request once, by its own body.
        http = [r for r in rows if r.action.startswith("http.")]
        assert Counter(r.action for r in http) == {
            "http.POST /api/v1/users": 80,
            "http.POST /api/v1/commands": 80,
            "http.POST /api/v1/activations": 40,
        }
        bodies = Counter(r.params for r in http)
        assert set(bodies.values()) == {1}, bodies.most_common(2)
        assert {r.result for r in http} == {"201", "202"}

        # Every command and every answer once, though both replicas handled each answer.
        for action in ("command.send", "command.accepted", "command.succeeded"):
            ids = command_ids(rows, action)
            assert len(ids) == 120 and set(ids.values()) == {1}, (action, ids.most_common(2))
            assert command_ids_sent <= ids.keys()
        by_target = {
            action: Counter(r.target for r in rows if r.action == action)
            for action in ("siren.request", "siren.dispatch", "siren.ended")
        }
        for action, targets in by_target.items():
            assert targets == Counter(dict.fromkeys(activations, 1)), action
        outcomes = Counter(r.target.split("/")[0] for r in rows if r.action == "siren.outcome")
        assert outcomes == Counter(dict.fromkeys(activations, 1))
        users = Counter(r.target for r in rows if r.action == "users.create")
        assert len(users) == 80 and set(users.values()) == {1}
        # Nothing else, and nothing twice: the whole tally of what the burst wrote.
        assert Counter(r.action for r in rows) == {
            "http.POST /api/v1/users": 80,
            "users.create": 80,
            "http.POST /api/v1/commands": 80,
            "http.POST /api/v1/activations": 40,
            "siren.request": 40,
            "siren.dispatch": 40,
            "command.send": 120,
            "command.accepted": 120,
            "command.succeeded": 120,
            "siren.outcome": 40,
            "siren.ended": 40,
        }
        # Both replicas did share the work: each served half the requests and published some.
        publishers = {c for c, ids in taps.publishes if ids}
        assert publishers == {pair.a.service.client_id, pair.b.service.client_id}


# -- 2: a command waiting out a broker outage -----------------------------------------------------


class Counting:
    """A plain subscriber to ``{p}/gw/+/cmd`` with a persistent session: the broker keeps what
    is published while it is away, so every publication is counted."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.mqtt = mqtt
        self.client_id = f"count-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []

    async def register(self) -> None:
        async with MqttClient(self.mqtt, self.client_id, persistent=True) as client:
            await client.subscribe([f"{self.mqtt.prefix}/gw/+/cmd"], qos=1)

    async def drain(self) -> list[str]:
        """Everything published since the last drain: reconnect, then read up to a sentinel
        published after the reconnection (it comes after whatever was queued)."""
        sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
        async with MqttClient(self.mqtt, self.client_id, persistent=True) as client:
            await client.subscribe([f"{self.mqtt.prefix}/gw/+/cmd"], qos=1)
            async with MqttClient(self.mqtt, f"{sentinel}-pub") as pub:
                await pub.publish(
                    f"{self.mqtt.prefix}/gw/sentinel/cmd",
                    json.dumps({"id": sentinel}).encode(),
                    qos=1,
                )
            async with asyncio.timeout(10):
                async for message in client.messages():
                    client.ack(message)
                    got = json.loads(message.payload)["id"]
                    if got == sentinel:
                        break
                    self.ids.append(got)
        return self.ids


async def test_a_command_submitted_during_a_broker_outage_is_published_once_by_two_replicas(
    tmp_path: Path, database_url: str, taps: Taps
) -> None:
    broker = MosquittoServer(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    try:
        mqtt = mqtt_settings(broker.port, prefix=f"t{uuid.uuid4().hex[:8]}/v1")
        counting = Counting(mqtt)
        await counting.register()
        async with replicas(tmp_path, database_url, mqtt, taps) as pair:
            await asyncio.to_thread(broker.stop)
            await wait_until(
                lambda: not any(r.service.connected.is_set() for r in pair.both),
                10,
                "both links to notice the outage",
            )
            body = {
                "gateway": "gw-o1",
                "device": "vent",
                "action": "write",
                "params": {"point": "mode", "value": "filtered"},
                "ttl_s": 120,
            }
            resp = await pair.a.post(pair.tokens[Role.DUTY_OFFICER], "/api/v1/commands", body)
            assert resp.status_code == 202, resp.text
            cid = resp.json()["id"]
            waiting = await pair.b.get(pair.tokens[Role.VIEWER], f"/api/v1/commands/{cid}")
            assert [e["state"] for e in waiting["events"]] == ["pending"]

            passes = len(taps.publishes)
            await asyncio.to_thread(broker.start)

            # Each replica reconnects and, first thing in its session, publishes what waits in
            # the database: both see this command. Wait for both passes to have ended.
            def both_published() -> bool:
                done = {c for c, _ids in taps.publishes[passes:]}
                return done >= {r.service.client_id for r in pair.both}

            await wait_until(both_published, 20, "both replicas' first publication pass")
            assert await counting.drain() == [cid]

            # Both replicas get the gateway's answers; each is recorded and audited once.
            async with AnsweringGateway(mqtt) as gw:
                await gw.send_ack("gw-o1", cid, "accepted")
                await gw.send_ack("gw-o1", cid, "succeeded", detail="mode reads 'filtered'")
                await pair.answers_handled_by_both(gw.sent, taps)
            record = await pair.b.get(pair.tokens[Role.VIEWER], f"/api/v1/commands/{cid}")
            assert record["state"] == "succeeded"
            assert [e["state"] for e in record["events"]] == [
                "pending",
                "sent",
                "accepted",
                "succeeded",
            ]
            rows = await pair.rows_after(0)
            mine = [r.action for r in rows if json.loads(r.params).get("id") == cid]
            assert mine == ["command.send", "command.accepted", "command.succeeded"]
            await assert_chain_whole(pair)
            assert await counting.drain() == [cid]  # nothing more came meanwhile
    finally:
        await asyncio.to_thread(broker.stop)


# -- 3: a live alert between two replicas ---------------------------------------------------------

LIVE_SIRENS = [
    ("s-l1", "gw-l1"),
    ("s-l2", "gw-l1"),
    ("s-l3", "gw-l1"),
    ("s-l4", "gw-l2"),
    ("s-l5", "gw-l2"),
    ("s-l6", "gw-l3"),
]


async def test_a_live_alert_approved_on_one_replica_is_dispatched_once_and_answered_once(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer, taps: Taps
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:8]}/v1")

    def outcome(device: str, _cmd: CommandRequest) -> str:
        return "unreachable" if device == "dev-s-l5" else "sounded"

    async with (
        AnsweringGateway(mqtt, outcome) as gw,
        replicas(tmp_path, database_url, mqtt, taps, sirens={"sweep_interval_s": 0.05}) as pair,
    ):
        await add_sirens(pair, LIVE_SIRENS)
        gw.answering = False  # answered below, by hand, while the sweep runs
        request = {
            "kind": "live",
            "signal": "air_raid",
            "sirens": [sid for sid, _g in LIVE_SIRENS],
            "reason": "air raid reported",
        }
        resp = await pair.a.post(pair.tokens[Role.DUTY_OFFICER], "/api/v1/activations", request)
        assert resp.status_code == 202, resp.text
        act = resp.json()["id"]
        a_id = pair.a.service.client_id

        def a_swept(since: float) -> Callable[[], bool]:
            return lambda: any(c == a_id and x == act and t > since for c, x, t in taps.sweeps)

        await wait_until(a_swept(0), 10, "replica a's sweep to look at the request")

        # The commander approves on b; at the same moment an admin approves on a.
        approved_at = time.monotonic()
        on_b, on_a = await asyncio.gather(
            pair.b.post(pair.tokens[Role.COMMANDER], f"/api/v1/activations/{act}/approve"),
            pair.a.post(pair.tokens[Role.ADMIN], f"/api/v1/activations/{act}/approve"),
        )
        assert sorted([on_b.status_code, on_a.status_code]) == [200, 409], (on_b.text, on_a.text)
        winner = on_b if on_b.status_code == 200 else on_a
        assert winner.json()["approved_by"] == ("commander" if winner is on_b else "admin")

        await wait_until(lambda: len(gw.received) >= 3, 10, "one command per gateway")
        await wait_until(a_swept(approved_at), 10, "replica a's sweep to follow the alert")
        by_gateway = Counter(g for g, _cmd in gw.commands(SIREN_ACTIVATE))
        assert by_gateway == {"gw-l1": 1, "gw-l2": 1, "gw-l3": 1}

        # The gateways answer, each answer arriving at both replicas; one is sent twice more
        # (a QoS 1 redelivery), and a stale "started" comes after the end.
        for g, cmd in gw.commands(SIREN_ACTIVATE):
            assert cmd.siren is not None
            for device in cmd.siren.sirens:
                await gw.send_ack(g, cmd.id, "running", device=device, outcome="started")
        for g, cmd in gw.commands(SIREN_ACTIVATE):
            await gw.answer(g, cmd)
        for topic, payload in gw.sent[-3:]:
            await gw.resend(topic, payload)
        g, cmd = gw.commands(SIREN_ACTIVATE)[0]
        await gw.send_ack(g, cmd.id, "running", device="dev-s-l2", outcome="started")
        await pair.answers_handled_by_both(gw.sent, taps)

        done = await pair.b.get(pair.tokens[Role.VIEWER], f"/api/v1/activations/{act}")
        assert done["state"] == "completed_with_failures", done["state_detail"]
        assert "5 of 6 sirens good" in done["state_detail"]
        report = await pair.a.get(pair.tokens[Role.VIEWER], f"/api/v1/activations/{act}/report")
        assert report["counts"] == {"sounded": 5, "unreachable": 1}

        rows = [r for r in await pair.rows_after(0) if not r.action.startswith("http.")]
        mine = [r for r in rows if r.target.split("/")[0] == act]
        assert Counter(r.action for r in mine) == {
            "siren.request": 1,
            "siren.approve": 1,
            "siren.dispatch": 1,
            "siren.outcome": 12,  # started, then the final outcome, per siren
            "siren.ended": 1,
            # The CAP message of the alert, published once by whichever replica claimed it.
            "cap.publish": 1,
        }
        outcomes = Counter((r.target, r.result) for r in mine if r.action == "siren.outcome")
        assert set(outcomes.values()) == {1}
        assert {t for t, _res in outcomes} == {f"{act}/{sid}" for sid, _g in LIVE_SIRENS}
        ids = {cmd.id for _g, cmd in gw.commands(SIREN_ACTIVATE)}
        for action in ("command.send", "command.accepted", "command.succeeded"):
            assert command_ids(rows, action) == Counter(dict.fromkeys(ids, 1)), action
        for cid in ids:
            record = await pair.a.get(pair.tokens[Role.VIEWER], f"/api/v1/commands/{cid}")
            events = Counter((e["state"], e["detail"], e["ts"]) for e in record["events"])
            assert set(events.values()) == {1}, events.most_common(2)
            assert [e["state"] for e in record["events"]].count("sent") == 1
            assert record["state"] == "succeeded"
        await assert_chain_whole(pair)
        # Still one command per gateway on the broker at the end.
        assert Counter(g for g, _c in gw.commands(SIREN_ACTIVATE)) == by_gateway
