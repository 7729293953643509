"""`shelterwatch demo` as a person runs it: a subprocess, a plain mosquitto_sub, curl-like calls."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path

import httpx
from servers import free_port, wait_until

from shelterwatch.config import MqttSettings
from shelterwatch.contract import TopicKind, parse_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.sim_inject import SimInject, sim_inject_topic

USER_LINE = r"^ +(admin|commander|duty|maint|viewer) +(\S+) +\w+$"


async def test_demo_brings_up_the_platform(tmp_path: Path) -> None:
    mqtt_port, http_port = free_port(), free_port()
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "demo",
        "--mqtt-port",
        str(mqtt_port),
        "--http-port",
        str(http_port),
        "--data-dir",
        str(tmp_path / "data"),
        "--shelters",
        "2",
        "--sirens",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []

    async def read_output() -> None:
        assert demo.stdout is not None
        async for line in demo.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    sub: asyncio.subprocess.Process | None = None
    try:
        await wait_until(
            lambda: any("Ctrl-C stops everything" in line for line in output), 60, "the demo banner"
        )
        banner = "".join(output)
        # One user per role, each with a password shown once; the viewer is enough here.
        users = dict(
            re.findall(r"^ +(admin|commander|duty|maint|viewer) +(\S+) +\w+$", banner, re.M)
        )
        assert set(users) == {"admin", "commander", "duty", "maint", "viewer"}, banner
        # A plain mosquitto_sub sees contract messages from every simulated device.
        sub = await asyncio.create_subprocess_exec(
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(mqtt_port),
            "-t",
            "shelterwatch/v1/#",
            "-v",
            "-W",
            "30",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        expected = {
            (f"gw-shelter-0{i}", d)
            for i in (1, 2)
            for d in ("door", "vent", "water", "env", "power")
        }
        expected |= {(f"gw-siren-0{i}", "siren") for i in (1, 2)}
        seen_data: set[tuple[str, str]] = set()
        seen_any: set[tuple[str, str]] = set()
        districts: dict[str, str | None] = {}  # gateway -> the district its data carries
        assert sub.stdout is not None
        async with asyncio.timeout(30):
            while seen_data != expected:
                line = (await sub.stdout.readline()).decode()
                assert line, "mosquitto_sub ended before every device was seen"
                topic = parse_topic(line.split(" ", 1)[0])
                if topic.kind in (TopicKind.DEVICE_DATA, TopicKind.DEVICE_STATE):
                    seen_any.add((topic.gateway, topic.device))
                if topic.kind is TopicKind.DEVICE_DATA:
                    seen_data.add((topic.gateway, topic.device))
                    districts[topic.gateway] = json.loads(line.split(" ", 1)[1]).get("district")
        assert seen_any == expected

        base = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/api/v1/health")).json()["status"] == "ok"
            assert (await http.get("/api/v1/sites/shelter-01/latest")).status_code == 401
            # As the banner's curl example does: log in, then use the bearer token.
            resp = await http.post(
                "/api/v1/auth/login", json={"username": "viewer", "password": users["viewer"]}
            )
            assert resp.status_code == 200, resp.text
            auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
            assert (await http.get("/api/v1/users", headers=auth)).status_code == 403
            # The sites' districts travel with their telemetry, and a siren post's district
            # in the inventory is the one its gateway sends.
            assert set(districts.values()) == {"xihu", "shangcheng"}, districts
            sirens = (await http.get("/api/v1/sirens", headers=auth)).json()
            assert len(sirens) == 2
            for siren in sirens:
                assert siren["district"] == districts[siren["gateway"]], (siren, districts)

            async def latest_complete() -> bool:
                r = await http.get("/api/v1/sites/shelter-01/latest", headers=auth)
                return r.status_code == 200 and len(r.json()["devices"]) == 5

            await wait_until(latest_complete, 30, "latest values of shelter-01 over HTTP")
            body = (await http.get("/api/v1/sites/shelter-01/latest", headers=auth)).json()
            vent = body["devices"]["vent"]
            assert vent["kind"] == "ventilation"
            assert vent["points"]["overpressure"]["unit"] == "Pa"
            assert vent["points"]["mode"]["value"] in ("clean", "isolated", "filtered")

        # An exercise director's inject reaches the simulated fleet: published on the demo's
        # broker as the control service does, it shows as an active fault of the demo's
        # simulator, and the repair inject takes it away.
        match = re.search(r"--sim (\S+)", banner)
        assert match, banner
        await _inject_reaches_the_fleet(mqtt_port, match.group(1))
    finally:
        if sub is not None and sub.returncode is None:
            sub.kill()
            await sub.wait()
        if demo.returncode is None:
            demo.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(demo.wait(), 20)
        except TimeoutError:
            demo.kill()
            await demo.wait()
            raise
        await reader
    assert code == 0, "".join(output[-30:])
    assert "demo stopped" in "".join(output)
    # Nothing readable is kept: only argon2 hashes of the passwords, in the control database.
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(pw.encode() in data for pw in users.values()), path


async def _inject_reaches_the_fleet(mqtt_port: int, fault_url: str) -> None:
    mqtt = MqttSettings(host="127.0.0.1", port=mqtt_port, protocol=4)  # amqtt: MQTT 3.1.1
    topic = sim_inject_topic(mqtt.prefix)
    site, scenario = "shelter-02", "door_jam"
    async with (
        httpx.AsyncClient(base_url=fault_url, timeout=5) as sim,
        MqttClient(mqtt, "demo-test-director") as director,
    ):
        for action in ("inject", "repair"):
            inject = SimInject(
                id="demo-drill.s1",
                exercise="demo-drill",
                action=action,
                site=site,
                scenario=scenario,
                ts=int(time.time() * 1000),
            )
            want = action == "inject"

            async def applied(inject: SimInject = inject, want: bool = want) -> bool:
                # QoS 1, not retained: published again until the demo's listener, which
                # subscribes at its own pace, has it; it applies each (id, action) once.
                await director.publish(topic, inject.to_json(), qos=1)
                faults = (await sim.get("/faults")).json()["faults"]
                return ((site, scenario) in {(f["site"], f["scenario"]) for f in faults}) == want

            await wait_until(
                applied, 15, f"the {action} of {scenario} at {site} applied", interval=0.2
            )


async def _banner_of_a_run(data_dir: Path) -> str:
    """Start the demo, wait for its banner and its API, stop it; return what it printed."""
    http_port = free_port()
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "demo",
        "--mqtt-port",
        str(free_port()),
        "--http-port",
        str(http_port),
        "--data-dir",
        str(data_dir),
        "--shelters",
        "1",
        "--sirens",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []

    async def read_output() -> None:
        assert demo.stdout is not None
        async for line in demo.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    try:
        await wait_until(
            lambda: any("Ctrl-C stops everything" in line for line in output), 60, "the banner"
        )

        async def api_up() -> bool:
            async with httpx.AsyncClient(timeout=2) as http:
                try:
                    resp = await http.get(f"http://127.0.0.1:{http_port}/api/v1/health")
                except httpx.TransportError:
                    return False
                return resp.status_code == 200

        await wait_until(api_up, 30, "the demo's control service")
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGINT)
        try:
            # Ctrl-C closes every service in turn; on a busy machine that can take a while.
            await asyncio.wait_for(demo.wait(), 60)
        except TimeoutError:
            demo.kill()
            await demo.wait()
            raise
        await reader
    return "".join(output)


async def test_a_second_start_keeps_the_users_and_shows_no_passwords(tmp_path: Path) -> None:
    first = await _banner_of_a_run(tmp_path / "data")
    passwords = dict(re.findall(USER_LINE, first, re.M))
    assert len(passwords) == 5, first
    second = await _banner_of_a_run(tmp_path / "data")
    assert not re.findall(USER_LINE, second, re.M), second
    assert not any(pw in second for pw in passwords.values())
    assert "exist already" in second
    assert f"shelterwatch users reset-password <name> --config {tmp_path / 'data'}" in second
