"""The test servers themselves: they come up on their own ports, restart on the same port."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from servers import InfluxServer, MosquittoServer, ServerError, wait_until

pytestmark = pytest.mark.integration


def _connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _mqtt_connack(port: int) -> bytes:
    """A bare MQTT 3.1.1 CONNECT; returns the broker's CONNACK."""
    client_id = b"servers-test"
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id
    packet = bytes([0x10, len(var) + len(payload)]) + var + payload
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(packet)
        return sock.recv(4)


def test_mosquitto_accepts_mqtt(mosquitto: MosquittoServer) -> None:
    assert mosquitto.port != 1883
    assert _mqtt_connack(mosquitto.port) == b"\x20\x02\x00\x00"


def test_mosquitto_restart_keeps_port(tmp_path: Path) -> None:
    server = MosquittoServer(tmp_path)
    server.start()
    try:
        port = server.port
        server.stop()
        assert not server.running
        assert not _connect(port)
        server.start()
        assert server.port == port
        assert _mqtt_connack(port) == b"\x20\x02\x00\x00"
        server.kill()
        assert not server.running
        server.restart()
        assert _connect(port)
    finally:
        server.stop()
    assert (tmp_path / "mosquitto.log").read_text().count(" running") == 3
    # Written on a clean stop: proves the broker (root or not) may write into its dir.
    assert (tmp_path / "persistence" / "mosquitto.db").stat().st_size > 0


async def test_influx_pings(influxdb: InfluxServer) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{influxdb.url}/ping")
    assert resp.status_code == 204
    assert resp.headers["X-Influxdb-Version"].startswith("1.")


async def test_wait_until() -> None:
    calls = []

    async def later() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await wait_until(later, timeout=5, what="three calls")
    await wait_until(lambda: True, timeout=0, what="at once")
    with pytest.raises(AssertionError, match="the impossible"):
        await wait_until(lambda: False, timeout=0.1, what="the impossible")
    await asyncio.sleep(0)


def test_port_in_use_is_refused(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    # The session broker holds this port: the new one must not mistake it for itself.
    clash = MosquittoServer(tmp_path, port=mosquitto.port)
    try:
        with pytest.raises(ServerError, match=f"port {mosquitto.port} is already in use"):
            clash.start()
        assert not clash.running
    finally:
        clash.stop()


def test_start_failure_shows_log(tmp_path: Path) -> None:
    broken = MosquittoServer(tmp_path)
    broken.conf_path.write_text("no_such_option 1\n")
    try:
        with pytest.raises(ServerError, match=r"exited with code 3(?s:.*)no_such_option"):
            broken.start()
        assert not broken.running
    finally:
        broken.stop()
