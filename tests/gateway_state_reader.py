"""Read a gateway's retained state messages until one satisfies a condition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from shelterwatch.config import MqttSettings
from shelterwatch.contract import GatewayState, gateway_state_topic
from shelterwatch.mqtt_client import MqttClient


async def read_gateway_states(
    mqtt: MqttSettings,
    gateway: str,
    until: Callable[[GatewayState], bool],
    timeout: float,
) -> list[GatewayState]:
    states: list[GatewayState] = []
    async with MqttClient(mqtt, f"state-reader-{uuid.uuid4().hex[:6]}") as client:
        await client.subscribe([gateway_state_topic(gateway, mqtt.prefix)])
        async with asyncio.timeout(timeout):
            async for message in client.messages():
                state = GatewayState.model_validate_json(message.payload)
                states.append(state)
                if until(state):
                    return states
    raise AssertionError("unreachable")
