"""The control service in tests: a real uvicorn on loopback, users of every role, logins.

Tests import this (``tests/`` is on sys.path through the rootdir conftest).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from servers import wait_until

from control import ControlSettings, create_app
from control.auth import Accounts, Role, hashing_for
from control.db import Database
from shelterwatch.config import MqttSettings
from shelterwatch.contract import CommandAck, CommandRequest, cmd_ack_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signing import generate_keypair

__all__ = [
    "PASSWORDS",
    "FakeGateway",
    "bearer",
    "control_settings",
    "create_users",
    "login",
    "serve",
]

# Cheap argon2 parameters: tests log in hundreds of times; the real cost is a setting.
FAST_HASHING = {"time_cost": 1, "memory_kib": 64, "parallelism": 1}
# One user per role, named after it.
PASSWORDS: dict[Role, str] = {role: f"{role.value}-pass-w0rd" for role in Role}


class _Server(uvicorn.Server):
    # The test owns the event loop and Ctrl-C; uvicorn must not take the signal handlers over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(settings: ControlSettings) -> AsyncIterator[str]:
    """Run the control app on a free loopback port; yield its base URL."""
    app = create_app(settings)
    # Port 0: the kernel picks a free port at bind time, so no other process can take it
    # between choosing and binding.
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn's answer to a failed start-up
            raise RuntimeError(f"the control service failed to start (exit {exc.code})") from exc

    task = asyncio.create_task(run(), name="control-api")
    try:
        await wait_until(lambda: server.started or task.done(), 15, "the control service")
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the control service stopped during start-up")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def control_settings(database_url: str, store_url: str, **overrides: Any) -> ControlSettings:
    """Production-mode settings (a real signing key, Secure cookies) with cheap hashing and
    a login rate limit no test trips by accident."""
    values: dict[str, Any] = {
        "mode": "production",
        "store_url": store_url,
        "database_url": database_url,
        "command_private_key": SecretStr(generate_keypair()[0]),
        "password_hashing": FAST_HASHING,
        "login_rate_per_min": 10_000,
    }
    return ControlSettings(**(values | overrides))


async def create_users(settings: ControlSettings, roles: tuple[Role, ...] = tuple(Role)) -> None:
    """One user per role (username = the role's name, password = PASSWORDS[role])."""
    async with Database(settings.database_url) as db:
        await db.upgrade()
        accounts = Accounts(db, hashing_for(settings))
        for role in roles:
            await accounts.create(
                actor="test", username=role.value, password=PASSWORDS[role], role=role
            )


async def login(client: httpx.AsyncClient, username: str, password: str) -> str:
    resp = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeGateway:
    """Gateways as the control service sees them, speaking the contract on a real broker:
    records every command published to ``{p}/gw/+/cmd`` and answers with acks the test
    chooses. Each test runs it under its own prefix."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.mqtt = mqtt
        self.received: list[tuple[str, CommandRequest]] = []
        self._client = MqttClient(mqtt, f"fake-gw-{uuid.uuid4().hex[:8]}")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeGateway:
        await self._client.connect()
        await self._client.subscribe([f"{self.mqtt.prefix}/gw/+/cmd"], qos=1)
        self._task = asyncio.create_task(self._collect(), name="fake-gateway")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.close()

    async def _collect(self) -> None:
        async for message in self._client.messages():
            gateway = message.topic.split("/")[-2]
            self.received.append((gateway, CommandRequest.model_validate_json(message.payload)))

    def commands(self, action: str | None = None) -> list[tuple[str, CommandRequest]]:
        return [(g, c) for g, c in self.received if action is None or c.action == action]

    async def ack(
        self,
        gateway: str,
        command_id: str,
        state: str,
        *,
        device: str | None = None,
        outcome: str | None = None,
        detail: str = "",
        ts: int | None = None,
    ) -> CommandAck:
        ack = CommandAck.model_validate(
            {
                "id": command_id,
                "state": state,
                "device": device,
                "outcome": outcome,
                "detail": detail,
                "ts": ts if ts is not None else time.time_ns() // 1_000_000,
            }
        )
        await self._client.publish(cmd_ack_topic(gateway, self.mqtt.prefix), ack.to_json(), qos=1)
        return ack
