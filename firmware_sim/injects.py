"""Exercise injects from the control service, applied to the simulated fleet.

The control service publishes each injected situation on ``{p}/sim/inject``
(``shelterwatch.sim_inject``); this listener is its only subscriber. It switches the named
fault on (``Fleet.fault``) or repairs it (``Fleet.repair``) at the simulated site that plays
the platform site named in the message.

A platform site may be played by several simulated sites (a shelter and a siren post stand
at one site in the command area tree, but are two simulator sites): ``sites`` maps each
platform site to its simulator sites, and the listener picks the first whose kind the
scenario fits. A site the map does not name is taken to be a simulator site of that name.

Each (id, action) is applied once: QoS 1 may deliver a message twice, and a fault injected
twice would be refused anyway, but a repair repeated after a new inject of the same id must
not undo it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

from pydantic import ValidationError

from firmware_sim.fleet import Fleet
from firmware_sim.scenarios import SCENARIOS, ScenarioError
from shelterwatch.backoff import Backoff
from shelterwatch.config import MqttSettings
from shelterwatch.errors import ConnectError
from shelterwatch.mqtt_client import Message, MqttClient
from shelterwatch.sim_inject import SimInject, sim_inject_topic

__all__ = ["AppliedInject", "InjectListener"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppliedInject:
    """What became of one inject: ``sim_site`` is None when no simulated site fits."""

    inject: SimInject
    sim_site: str | None
    ok: bool
    detail: str


class InjectListener:
    """``async with InjectListener(fleet, mqtt, sites=...) as listener:`` applies injects
    until the block ends; ``listener.applied`` lists what it did, in order."""

    def __init__(
        self,
        fleet: Fleet,
        mqtt: MqttSettings,
        *,
        sites: Mapping[str, Sequence[str]] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.fleet = fleet
        self.mqtt = mqtt
        self.sites = {k: tuple(v) for k, v in (sites or {}).items()}
        self.client_id = client_id or f"shelterwatch-sim-inject-{uuid.uuid4().hex[:8]}"
        self.applied: list[AppliedInject] = []
        self.subscribed = asyncio.Event()
        self._seen: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="sim-inject-listener")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = Backoff(min(0.2, self.mqtt.reconnect_max_s), self.mqtt.reconnect_max_s)
        topic = sim_inject_topic(self.mqtt.prefix)
        while True:
            try:
                async with MqttClient(self.mqtt, self.client_id) as client:
                    await client.subscribe([topic], qos=1)
                    self.subscribed.set()
                    backoff.reset()
                    async for message in client.messages():
                        await self.handle(message)
            except (ConnectError, OSError) as exc:
                self.subscribed.clear()
                log.warning("sim injects: the broker link dropped (%s); reconnecting", exc)
            await asyncio.sleep(backoff.next())

    async def handle(self, message: Message) -> AppliedInject | None:
        try:
            inject = SimInject.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("sim injects: dropped a malformed inject on %s: %s", message.topic, exc)
            return None
        key = (inject.id, inject.action)
        if key in self._seen:
            return None
        self._seen.add(key)
        return await self.apply(inject)

    async def apply(self, inject: SimInject) -> AppliedInject:
        sim_site = self._sim_site(inject)
        if sim_site is None:
            result = AppliedInject(inject, None, False, self._no_site(inject))
        else:
            try:
                if inject.action == "inject":
                    await self.fleet.fault(sim_site, inject.scenario, **inject.options)
                else:
                    await self.fleet.repair(sim_site, inject.scenario)
                result = AppliedInject(inject, sim_site, True, "")
            except ScenarioError as exc:
                result = AppliedInject(inject, sim_site, False, str(exc))
        self.applied.append(result)
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "sim injects: %s %s %s at %s (%s) for exercise %s%s",
            inject.action,
            inject.id,
            inject.scenario,
            inject.site,
            result.sim_site,
            inject.exercise,
            "" if result.ok else f": {result.detail}",
        )
        return result

    def _sim_site(self, inject: SimInject) -> str | None:
        scenario = SCENARIOS.get(inject.scenario)
        candidates = self.sites.get(inject.site, (inject.site,))
        for candidate in candidates:
            if candidate in self.fleet.shelters:
                kind = "shelter"
            elif candidate in self.fleet.sirens:
                kind = "siren"
            else:
                continue
            if scenario is not None and kind not in scenario.kinds:
                continue
            # A fault on one device (comm_loss of the siren) needs the site that has it.
            device = inject.options.get("device")
            if isinstance(device, str) and device and not self._has_device(candidate, device):
                continue
            return candidate
        return None

    def _has_device(self, site: str, device: str) -> bool:
        return any(d.site == site and d.device_id == device for d in self.fleet.devices)

    def _no_site(self, inject: SimInject) -> str:
        candidates = self.sites.get(inject.site, (inject.site,))
        return (
            f"no simulated site plays {inject.site} for {inject.scenario} "
            f"(tried {', '.join(candidates)})"
        )
