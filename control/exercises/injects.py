"""Injecting situations: drawing them at random, and sending their faults to the simulator.

The control service never imports the simulator. It publishes each inject on
``{p}/sim/inject`` (``shelterwatch.sim_inject``), which only the simulator subscribes to, over
a short connection of its own: injects are rare, and the command link's session stays the
gateways' alone.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shelterwatch.config import MqttSettings
from shelterwatch.errors import ShelterwatchError
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.sim_inject import SimInject, sim_inject_topic

__all__ = ["Draw", "draw", "publish_inject"]

_PUBLISH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Draw:
    kind: str
    # A site code, or a siren post id for a siren situation.
    target: str
    origin: str


def draw(seed: int, count: int, candidates: Mapping[str, Sequence[str]]) -> list[Draw]:
    """``count`` situations drawn with ``random.Random(seed)``: a kind among those with a
    target, then a target of that kind. The same seed and candidates draw the same list."""
    kinds = sorted(kind for kind, targets in candidates.items() if targets)
    if not kinds:
        return []
    rng = random.Random(seed)
    out: list[Draw] = []
    for number in range(count):
        kind = rng.choice(kinds)
        target = rng.choice(sorted(candidates[kind]))
        out.append(Draw(kind, target, f"random:{seed}:{number}"))
    return out


async def publish_inject(mqtt: MqttSettings, inject: SimInject, client_id: str) -> str:
    """Publish ``inject`` (QoS 1, not retained: a simulator that starts later must not replay
    old faults). Returns "" once the broker took it, else what went wrong."""
    client = MqttClient(mqtt, f"{client_id}-inject-{uuid.uuid4().hex[:8]}")
    try:
        async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
            await client.connect()
            await client.publish(sim_inject_topic(mqtt.prefix), inject.to_json(), qos=1)
    except (ShelterwatchError, OSError, TimeoutError) as exc:
        return f"the broker did not take the inject: {exc or type(exc).__name__}"
    finally:
        await client.close()
    return ""
