"""`shelterwatch demo` as a person runs it: a subprocess, a plain mosquitto_sub, curl-like calls."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx
from servers import free_port, wait_until

from shelterwatch.contract import TopicKind, parse_topic


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
        token = re.search(r"API token: ([\w-]+)", "".join(output))
        assert token, "".join(output)
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
        assert seen_any == expected

        base = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/api/v1/health")).json()["status"] == "ok"
            assert (await http.get("/api/v1/sites/shelter-01/latest")).status_code == 401
            auth = {"Authorization": f"Bearer {token.group(1)}"}

            async def latest_complete() -> bool:
                r = await http.get("/api/v1/sites/shelter-01/latest", headers=auth)
                return r.status_code == 200 and len(r.json()["devices"]) == 5

            await wait_until(latest_complete, 30, "latest values of shelter-01 over HTTP")
            body = (await http.get("/api/v1/sites/shelter-01/latest", headers=auth)).json()
            vent = body["devices"]["vent"]
            assert vent["kind"] == "ventilation"
            assert vent["points"]["overpressure"]["unit"] == "Pa"
            assert vent["points"]["mode"]["value"] in ("clean", "isolated", "filtered")
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
