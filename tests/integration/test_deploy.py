"""deploy/mosquitto against a real Mosquitto: logins, and the ACL that keeps gateways apart.

The production config is used as it is, with only what must differ in a test changed: its
listeners are replaced by one on a free loopback port, and its files (password file, ACL,
persistence, log) are moved into the test's directory. It runs twice: with the static example
ACL and hand-made logins, and with the files `shelterwatch deploy mqtt` generates for a fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from servers import MOSQUITTO_CANDIDATES, ServerError, find_binary, free_port, wait_until

from shelterwatch.config import MqttSettings
from shelterwatch.contract import subscriptions
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import Message, MqttClient

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
PREFIX = "shelterwatch/v1"
GW = "gw-shelter-01"
USERS = (GW, "collector", "control")
# How long a message the ACL should have stopped gets to show up after the positive control.
GRACE_S = 0.5


@dataclass
class Broker:
    port: int
    passwords: dict[str, str]
    log_path: Path

    def settings(
        self, user: str | None, password: str | None = None, protocol: int = 5
    ) -> MqttSettings:
        if user is not None and password is None:
            password = self.passwords[user]
        return MqttSettings.model_validate(
            {
                "host": "127.0.0.1",
                "port": self.port,
                "username": user,
                "password": password,
                "protocol": protocol,
            }
        )


def adapted_config(src: str, tmp: Path, port: int) -> str:
    """The production config with its listeners and file paths rewritten for this test."""
    global_part = re.split(r"(?m)^listener\b", src, maxsplit=1)[0]
    paths = {
        "password_file": tmp / "passwd",
        "acl_file": tmp / "aclfile",
        "persistence_location": f"{tmp / 'persistence'}/",
        "log_dest": f"file {tmp / 'mosquitto.log'}",
    }
    lines = []
    for line in global_part.splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() else ""
        lines.append(f"{key} {paths[key]}" if key in paths else line)
    # Run as root, Mosquitto drops to user "mosquitto", which cannot write into a pytest tmp dir.
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    lines += [f"listener {port} 127.0.0.1", ""]
    return "\n".join(lines)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def mosquitto_in(tmp: Path, passwords: dict[str, str]) -> Iterator[Broker]:
    """The production config, run with the ``passwd`` and ``aclfile`` found in ``tmp``."""
    try:
        binary = find_binary(MOSQUITTO_CANDIDATES, "mosquitto")
    except ServerError as exc:
        pytest.fail(f"{exc}\n(`make test` installs mosquitto)", pytrace=False)
    (tmp / "persistence").mkdir(exist_ok=True)
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        adapted_config((DEPLOY / "mosquitto.conf").read_text(encoding="utf-8"), tmp, port),
        encoding="utf-8",
    )
    out_path = tmp / "stdout.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            while not _accepts(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = out_path.read_text(errors="replace")
                    log = (
                        (tmp / "mosquitto.log").read_text(errors="replace")
                        if (tmp / "mosquitto.log").exists()
                        else ""
                    )
                    pytest.fail(
                        f"mosquitto with deploy/mosquitto/mosquitto.conf did not start "
                        f"(exit {proc.poll()}):\n{text}\n{log}",
                        pytrace=False,
                    )
                time.sleep(0.05)
            yield Broker(port, passwords, tmp / "mosquitto.log")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The static example ACL (deploy/mosquitto/aclfile), logins made by hand as the README
    shows."""
    try:
        passwd_tool = find_binary(("/usr/bin/mosquitto_passwd", "mosquitto_passwd"), "mosquitto")
    except ServerError as exc:
        pytest.fail(f"{exc}\n(`make test` installs mosquitto)", pytrace=False)
    tmp = tmp_path_factory.mktemp("deploy-mosquitto")
    shutil.copy(DEPLOY / "aclfile", tmp / "aclfile")
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    for i, (user, password) in enumerate(passwords.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            [passwd_tool, "-b", *create, str(tmp / "passwd"), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    with mosquitto_in(tmp, passwords) as running_broker:
        yield running_broker


@contextlib.asynccontextmanager
async def connected(
    settings: MqttSettings, client_id: str, filters: list[str] | None = None
) -> AsyncIterator[MqttClient]:
    async with MqttClient(settings, client_id) as client:
        if filters:
            await client.subscribe(filters, qos=1)
        yield client


def received(client: MqttClient) -> list[Message]:
    """Everything the client has received so far, taken off its queue."""
    out: list[Message] = []
    queue = client._queue  # the test reads the client's queue without blocking
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def wait_for_topic(client: MqttClient, topic: str, seen: list[Message]) -> None:
    def arrived() -> bool:
        seen.extend(received(client))
        return any(m.topic == topic for m in seen)

    await wait_until(arrived, 5, f"a message on {topic}")


# --- the config itself -------------------------------------------------------------------------


def test_production_config_has_the_promised_settings() -> None:
    text = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8")
    settings = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            settings.setdefault(key, value)
    assert settings["allow_anonymous"] == "false"
    assert settings["persistence"] == "true"
    assert "password_file" in settings
    assert "acl_file" in settings
    assert int(settings["max_queued_messages"]) > 1000
    assert int(settings["max_queued_bytes"]) > 0
    assert settings["persistent_client_expiration"] == "14d"
    # At least the clients' default window (MqttSettings.max_inflight).
    assert int(settings["max_inflight_messages"]) >= MqttSettings().max_inflight
    assert int(settings["message_size_limit"]) > 0
    # The listeners come last: everything after the first one is listener-specific.
    first = text.index("\nlistener ")
    assert "allow_anonymous" not in text[first:]
    assert "password_file" not in text[first:]


# --- logins ------------------------------------------------------------------------------------


async def test_anonymous_connect_is_refused(broker: Broker) -> None:
    for protocol in (5, 4):
        with pytest.raises(ConnectError, match="refused"):
            async with MqttClient(broker.settings(None, protocol=protocol), "anon-test"):
                pass


async def test_wrong_password_is_refused(broker: Broker) -> None:
    with pytest.raises(ConnectError, match="refused"):
        async with MqttClient(broker.settings(GW, "not-the-password"), "wrong-pw-test"):
            pass
    # An unknown user is refused just the same.
    with pytest.raises(ConnectError, match="refused"):
        async with MqttClient(broker.settings("gw-unknown", "whatever"), "unknown-user-test"):
            pass


async def publish_denied(client: MqttClient, topic: str, payload: bytes) -> None:
    """Publish where the ACL says no: MQTT 5 must raise PublishRefused, 3.1.1 cannot know."""
    try:
        await client.publish(topic, payload)
    except PublishRefused:
        assert client.protocol == 5
        return
    assert client.protocol == 4, "an MQTT 5 client must learn that the broker refused it"


async def test_every_login_connects_with_its_password(broker: Broker) -> None:
    for user in USERS:
        async with MqttClient(broker.settings(user), f"login-test-{user}") as client:
            assert client.connected


# --- the ACL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [5, 4])
async def test_gateway_publishes_only_under_its_own_id(broker: Broker, protocol: int) -> None:
    own = f"{PREFIX}/gw/{GW}/dev/door/data"
    other = f"{PREFIX}/gw/gw-shelter-02/dev/door/data"
    own_state = f"{PREFIX}/gw/{GW}/dev/door/state"
    seen: list[Message] = []
    async with (
        connected(
            broker.settings("collector"), f"collector-test-{protocol}", subscriptions(PREFIX)
        ) as collector,
        connected(broker.settings(GW, protocol=protocol), f"shelterwatch-{GW}") as gw,
    ):
        await gw.publish(own, b'{"ts": 1758160800000, "seq": 0, "values": {"closed": true}}')
        await wait_for_topic(collector, own, seen)
        # Denied: dropped by the broker (MQTT 3.1.1 gets a plain PUBACK, MQTT 5 a PUBACK with
        # reason code 0x87, which MqttClient raises as PublishRefused).
        await publish_denied(gw, other, b'{"ts": 1758160800000, "seq": 1, "values": {}}')
        # Positive control on the same connection: the broker handles one client's publishes
        # in order, so once this has arrived, the denied message would have arrived too.
        await gw.publish(own_state, b'{"online": true, "ts": 1758160800000}')
        await wait_for_topic(collector, own_state, seen)
        await asyncio.sleep(GRACE_S)
        seen.extend(received(collector))
    topics = [m.topic for m in seen]
    assert own in topics
    assert other not in topics, f"the broker delivered another gateway's topic: {topics}"


async def test_gateway_cannot_read_another_gateways_commands(broker: Broker) -> None:
    own_cmd = f"{PREFIX}/gw/{GW}/cmd"
    other_cmd = f"{PREFIX}/gw/gw-shelter-02/cmd"
    seen: list[Message] = []
    async with (
        # Subscribing to everything succeeds; the ACL filters what is delivered.
        connected(broker.settings(GW), f"shelterwatch-{GW}-sub", [f"{PREFIX}/#"]) as gw,
        connected(broker.settings("control"), "control-test") as control,
    ):
        await control.publish(other_cmd, b"{}")
        await control.publish(own_cmd, b"{}")
        await wait_for_topic(gw, own_cmd, seen)
        await asyncio.sleep(GRACE_S)
        seen.extend(received(gw))
    assert other_cmd not in [m.topic for m in seen]


async def test_collector_cannot_publish_commands(broker: Broker) -> None:
    cmd = f"{PREFIX}/gw/{GW}/cmd"
    ack = f"{PREFIX}/gw/{GW}/cmd/ack"
    gw_seen: list[Message] = []
    control_seen: list[Message] = []
    async with (
        connected(broker.settings(GW), f"shelterwatch-{GW}", [cmd]) as gw,
        connected(broker.settings("control"), "control-test", [f"{PREFIX}/gw/+/cmd/ack"]) as ctl,
        connected(broker.settings("collector"), "collector-test") as collector,
    ):
        await publish_denied(collector, cmd, b'{"id": "from-collector"}')
        # Positive control: the control service may send commands, and reads the acks.
        await ctl.publish(cmd, b'{"id": "from-control"}')
        await wait_for_topic(gw, cmd, gw_seen)
        await gw.publish(ack, b'{"id": "from-control", "state": "accepted"}')
        await wait_for_topic(ctl, ack, control_seen)
        await asyncio.sleep(GRACE_S)
        gw_seen.extend(received(gw))
    payloads = [m.payload for m in gw_seen if m.topic == cmd]
    assert payloads == [b'{"id": "from-control"}']


async def test_collector_cannot_publish_telemetry(broker: Broker) -> None:
    fake = f"{PREFIX}/gw/{GW}/dev/door/data"
    real = f"{PREFIX}/gw/{GW}/dev/vent/data"
    seen: list[Message] = []
    async with (
        connected(broker.settings("control"), "control-test", subscriptions(PREFIX)) as control,
        connected(broker.settings("collector"), "collector-test") as collector,
        connected(broker.settings(GW), f"shelterwatch-{GW}") as gw,
    ):
        await publish_denied(collector, fake, b"{}")
        await gw.publish(real, b"{}")
        await wait_for_topic(control, real, seen)
        await asyncio.sleep(GRACE_S)
        seen.extend(received(control))
    assert fake not in [m.topic for m in seen]


def test_mqtt5_denied_publish_gets_not_authorised(broker: Broker) -> None:
    """MQTT 5 publishers learn of the denial: PUBACK reason code 0x87 (not authorised)."""
    codes: dict[int, int] = {}
    done = threading.Event()

    def on_publish(_c: object, _u: object, mid: int, rc: object, _p: object) -> None:
        codes[mid] = int(getattr(rc, "value", rc))  # type: ignore[call-overload]
        if len(codes) == 2:
            done.set()

    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"paho-{GW}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(GW, broker.passwords[GW])
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        allowed = client.publish(f"{PREFIX}/gw/{GW}/dev/door/data", b"{}", qos=1).mid
        denied = client.publish(f"{PREFIX}/gw/gw-shelter-02/dev/door/data", b"{}", qos=1).mid
        assert done.wait(5), f"PUBACKs received: {codes}"
    finally:
        client.disconnect()
        client.loop_stop()
    # Success, or 0x10 "no matching subscribers" (nobody listens here): both below 0x80.
    assert codes[allowed] < 0x80
    assert codes[denied] == 0x87


# --- the files `shelterwatch deploy mqtt` generates ---------------------------------------------

GW_B = "gw-shelter-02"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto with the generated passwd and aclfile; passwords read back from the
    generated credentials files, as each service would get them."""
    tmp = tmp_path_factory.mktemp("deploy-generated")
    fleet = tmp / "fleet.yaml"
    fleet.write_text(f"gateways: [{GW}, {GW_B}]\n", encoding="utf-8")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "shelterwatch.cli.main", "deploy", "mqtt"),
            *("--fleet", str(fleet), "--out", str(tmp), "--hasher", "mosquitto_passwd"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    passwords = {}
    for env in sorted((tmp / "credentials").glob("*.env")):
        values = dict(line.split("=", 1) for line in env.read_text().splitlines())
        passwords[values["SHELTERWATCH_MQTT__USERNAME"]] = values["SHELTERWATCH_MQTT__PASSWORD"]
    assert set(passwords) == {GW, GW_B, "collector", "control"}
    with mosquitto_in(tmp, passwords) as running_broker:
        yield running_broker


async def test_generated_logins_connect_and_strangers_do_not(generated: Broker) -> None:
    for user in generated.passwords:
        async with MqttClient(generated.settings(user), f"gen-login-{user}") as client:
            assert client.connected
    with pytest.raises(ConnectError, match="refused"):
        async with MqttClient(generated.settings(GW, generated.passwords[GW_B]), "gen-swap"):
            pass


@pytest.mark.parametrize("protocol", [5, 4])
async def test_generated_gateway_cannot_publish_as_another(
    generated: Broker, protocol: int
) -> None:
    own = f"{PREFIX}/gw/{GW}/dev/door/data"
    forged = [
        f"{PREFIX}/gw/{GW_B}/dev/door/data",
        f"{PREFIX}/gw/{GW_B}/dev/door/state",
        f"{PREFIX}/gw/{GW_B}/state",
        f"{PREFIX}/gw/{GW_B}/cmd/ack",
    ]
    own_ack = f"{PREFIX}/gw/{GW}/cmd/ack"
    seen: list[Message] = []
    async with (
        connected(
            generated.settings("control"),
            f"gen-control-{protocol}",
            [f"{PREFIX}/gw/+/state", f"{PREFIX}/gw/+/dev/+/+", f"{PREFIX}/gw/+/cmd/ack"],
        ) as control,
        connected(generated.settings(GW, protocol=protocol), f"gen-{GW}-{protocol}") as gw,
    ):
        await gw.publish(own, b"{}")
        await wait_for_topic(control, own, seen)
        for topic in forged:
            await publish_denied(gw, topic, b"{}")
        await gw.publish(own_ack, b"{}")  # positive control, after the denied ones
        await wait_for_topic(control, own_ack, seen)
        await asyncio.sleep(GRACE_S)
        seen.extend(received(control))
    topics = {m.topic for m in seen}
    assert topics & set(forged) == set(), f"a gateway published as another: {topics}"


async def test_generated_gateway_cannot_publish_any_command(generated: Broker) -> None:
    own_cmd = f"{PREFIX}/gw/{GW}/cmd"
    other_cmd = f"{PREFIX}/gw/{GW_B}/cmd"
    a_seen: list[Message] = []
    b_seen: list[Message] = []
    async with (
        connected(generated.settings(GW), f"gen-{GW}-cmd", [own_cmd]) as gw_a,
        connected(generated.settings(GW_B), f"gen-{GW_B}-cmd", [other_cmd]) as gw_b,
        connected(generated.settings("control"), "gen-control-cmd") as control,
    ):
        # Not even to itself: a gateway login must not be able to order its own devices.
        await publish_denied(gw_a, own_cmd, b'{"id": "self"}')
        await publish_denied(gw_a, other_cmd, b'{"id": "lateral"}')
        await control.publish(own_cmd, b'{"id": "from-control-a"}')
        await control.publish(other_cmd, b'{"id": "from-control-b"}')
        await wait_for_topic(gw_a, own_cmd, a_seen)
        await wait_for_topic(gw_b, other_cmd, b_seen)
        await asyncio.sleep(GRACE_S)
        a_seen.extend(received(gw_a))
        b_seen.extend(received(gw_b))
    assert [m.payload for m in a_seen] == [b'{"id": "from-control-a"}']
    assert [m.payload for m in b_seen] == [b'{"id": "from-control-b"}']


async def test_generated_gateway_cannot_read_another_gateways_commands(generated: Broker) -> None:
    own_cmd = f"{PREFIX}/gw/{GW}/cmd"
    other_cmd = f"{PREFIX}/gw/{GW_B}/cmd"
    seen: list[Message] = []
    async with (
        connected(generated.settings(GW), f"gen-{GW}-all", [f"{PREFIX}/#"]) as gw,
        connected(generated.settings("control"), "gen-control-read") as control,
    ):
        await control.publish(other_cmd, b"{}")
        await control.publish(own_cmd, b"{}")
        await wait_for_topic(gw, own_cmd, seen)
        await asyncio.sleep(GRACE_S)
        seen.extend(received(gw))
    assert other_cmd not in [m.topic for m in seen]


async def test_generated_collector_cannot_publish_commands_and_control_can(
    generated: Broker,
) -> None:
    cmd = f"{PREFIX}/gw/{GW}/cmd"
    ack = f"{PREFIX}/gw/{GW}/cmd/ack"
    alert = f"{PREFIX}/alert/shelter-01/co2_high/env"
    gw_seen: list[Message] = []
    control_seen: list[Message] = []
    async with (
        connected(generated.settings(GW), f"gen-{GW}-c", [cmd]) as gw,
        connected(
            generated.settings("control"), "gen-control-c", [ack, f"{PREFIX}/alert/#"]
        ) as ctl,
        connected(generated.settings("collector"), "gen-collector-c") as collector,
    ):
        await publish_denied(collector, cmd, b'{"id": "from-collector"}')
        await publish_denied(collector, f"{PREFIX}/gw/{GW}/dev/door/data", b"{}")
        await collector.publish(alert, b'{"active": true}')  # what the collector may publish
        await ctl.publish(cmd, b'{"id": "from-control"}')
        await wait_for_topic(gw, cmd, gw_seen)
        await gw.publish(ack, b'{"id": "from-control", "state": "accepted"}')
        await wait_for_topic(ctl, ack, control_seen)
        await wait_for_topic(ctl, alert, control_seen)
        await asyncio.sleep(GRACE_S)
        gw_seen.extend(received(gw))
    assert [m.payload for m in gw_seen if m.topic == cmd] == [b'{"id": "from-control"}']
