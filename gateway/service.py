"""The gateway service: pollers for every device, and the MQTT uplink that publishes them.

Pollers never wait for the uplink. They hand events to an in-memory queue, bounded by
``queue_size``; when it is full the oldest message is dropped and counted, and because each
message got its ``seq`` when it was queued, the collector sees the gap. Publishes are QoS 1
with a bounded number in flight. A publish the broker did not acknowledge before the link
dropped is sent again first after the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from gateway.hub import ModbusHub
from gateway.poller import DeviceEvent, DevicePoller, now_ms
from gateway.settings import GatewaySettings
from shelterwatch import __version__
from shelterwatch.backoff import Backoff
from shelterwatch.contract import (
    DeviceData,
    DeviceState,
    GatewayState,
    PointInfo,
    data_topic,
    device_state_topic,
    gateway_state_topic,
)
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import MqttClient, Will
from shelterwatch.profiles import Profile, load_profile

__all__ = ["Gateway", "GatewayStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GatewayStats:
    queued: int = 0
    published: int = 0
    dropped: int = 0
    republished: int = 0
    refused: int = 0
    connects: int = 0


@dataclass(frozen=True, slots=True)
class _Outgoing:
    seq: int
    topic: str
    payload: bytes


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.stats = GatewayStats()
        self._prefix = settings.mqtt.prefix
        self._seq = 0
        self._queue: deque[_Outgoing] = deque()
        self._retry: list[_Outgoing] = []
        self._wakeup = asyncio.Event()
        self._states: dict[str, DeviceState] = {}
        self._dirty_states: set[str] = set()
        self._hubs: dict[tuple[str, int], ModbusHub] = {}
        self._profiles: dict[str, Profile] = {}
        self.pollers: list[DevicePoller] = []
        self.connected = asyncio.Event()
        for device in settings.devices:
            profile = load_profile(device.profile)
            self._profiles[device.id] = profile
            key = (device.transport.host, device.transport.port)
            hub = self._hubs.get(key)
            if hub is not None and (hub.timeout_s, hub.retries) != (
                device.timeout_s,
                device.retries,
            ):
                log.warning(
                    "device %s shares %s with another device; the link uses the first "
                    "device's timeout_s=%s and retries=%s",
                    device.id,
                    hub.name,
                    hub.timeout_s,
                    hub.retries,
                )
            if hub is None:
                hub = ModbusHub(
                    device.transport.host,
                    device.transport.port,
                    timeout_s=device.timeout_s,
                    retries=device.retries,
                )
                self._hubs[key] = hub
            self.pollers.append(
                DevicePoller(
                    device,
                    profile,
                    hub,
                    self._on_event,
                    snapshot_interval_s=settings.snapshot_interval_s,
                )
            )

    # ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and publish until cancelled."""
        log.info(
            "gateway %s (site %s): %d devices, broker %s:%s",
            self.settings.gateway_id,
            self.settings.site,
            len(self.pollers),
            self.settings.mqtt.host,
            self.settings.mqtt.port,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                for poller in self.pollers:
                    tg.create_task(poller.run(), name=f"poll-{poller.config.id}")
                tg.create_task(self._uplink(), name="uplink")
        finally:
            for hub in self._hubs.values():
                await hub.close()

    # Pollers call this; it never blocks.
    async def _on_event(self, event: DeviceEvent) -> None:
        profile = self._profiles[event.device]
        if event.online_changed:
            self._states[event.device] = DeviceState(
                online=event.online,
                ts=event.ts,
                kind=profile.kind,
                profile=profile.name,
                error=event.error,
                points={
                    p.name: PointInfo(unit=p.unit, kind=p.value_kind)  # type: ignore[arg-type]
                    for p in profile.points
                },
            )
            self._dirty_states.add(event.device)
        data = DeviceData(
            ts=event.ts,
            seq=self._seq,
            site=self.settings.site,
            kind=profile.kind,
            values=event.values,
            quality=event.quality,
            full=event.full,
        )
        self._seq += 1
        self._queue.append(
            _Outgoing(
                data.seq,
                data_topic(self.settings.gateway_id, event.device, self._prefix),
                data.to_json(),
            )
        )
        self.stats.queued += 1
        if len(self._queue) > self.settings.queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.warning(
                    "uplink queue full: %d data messages dropped so far (oldest first)",
                    self.stats.dropped,
                )
        self._wakeup.set()

    def _gateway_state(self, online: bool) -> GatewayState:
        return GatewayState(
            online=online,
            ts=now_ms(),
            site=self.settings.site,
            version=__version__,
            devices=[p.config.id for p in self.pollers],
        )

    async def _uplink(self) -> None:
        s = self.settings
        backoff = Backoff(initial=0.5, maximum=s.mqtt.reconnect_max_s)
        state_topic = gateway_state_topic(s.gateway_id, self._prefix)
        failed_before = False
        while True:
            will = Will(state_topic, self._gateway_state(False).to_json())
            try:
                async with MqttClient(s.mqtt, f"shelterwatch-{s.gateway_id}", will=will) as mqtt:
                    self.stats.connects += 1
                    log.log(
                        logging.INFO,
                        "gateway %s connected to %s:%s%s",
                        s.gateway_id,
                        s.mqtt.host,
                        s.mqtt.port,
                        " again" if failed_before else "",
                    )
                    failed_before = False
                    backoff.reset()
                    await self._publish_birth(mqtt, state_topic)
                    self.connected.set()
                    try:
                        await self._pump(mqtt)
                    except asyncio.CancelledError:
                        # A clean stop says goodbye itself; the will is for crashes.
                        with contextlib.suppress(ConnectError, TimeoutError):
                            async with asyncio.timeout(1):
                                await mqtt.publish(
                                    state_topic, self._gateway_state(False).to_json(), retain=True
                                )
                        raise
            except ConnectError as exc:
                self.connected.clear()
                if not failed_before:
                    log.warning(
                        "gateway %s: MQTT uplink down (%s); polling goes on and data is queued",
                        s.gateway_id,
                        exc,
                    )
                failed_before = True
                await asyncio.sleep(backoff.next())
            except BaseException:
                self.connected.clear()
                raise

    async def _publish_birth(self, mqtt: MqttClient, state_topic: str) -> None:
        # Birth order: gateway state, then device states, then data (snapshots are requested so
        # that a consumer that missed anything gets every point again).
        await mqtt.publish(state_topic, self._gateway_state(True).to_json(), retain=True)
        self._dirty_states.update(self._states)
        for poller in self.pollers:
            poller.request_snapshot()

    async def _pump(self, mqtt: MqttClient) -> None:
        prefix, gw = self._prefix, self.settings.gateway_id
        try:
            while True:
                while self._dirty_states:
                    device = self._dirty_states.pop()
                    state = self._states[device]
                    await mqtt.publish(
                        device_state_topic(gw, device, prefix), state.to_json(), retain=True
                    )
                batch = self._retry + list(self._queue)
                self.stats.republished += len(self._retry)
                self._retry = []
                self._queue.clear()
                for i, item in enumerate(batch):
                    try:
                        await self._send(mqtt, item)
                    except BaseException:
                        # Whatever was not handed to the broker goes out first next time.
                        self._retry.extend(batch[i:])
                        raise
                if not self._queue and not self._dirty_states:
                    self._wakeup.clear()
                    waiters = [
                        asyncio.ensure_future(self._wakeup.wait()),
                        asyncio.ensure_future(mqtt.wait_disconnected()),
                    ]
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waiters:
                            w.cancel()
                    if not mqtt.connected:
                        raise ConnectError("MQTT connection lost")
        finally:
            await self._settle(mqtt)

    async def _send(self, mqtt: MqttClient, item: _Outgoing) -> None:
        await mqtt.inflight.acquire()
        try:
            fut = mqtt.start_publish(item.topic, item.payload, qos=1)
        except ConnectError:
            mqtt.inflight.release()
            raise

        def done(f: asyncio.Future[None]) -> None:
            mqtt.inflight.release()
            exc = None if f.cancelled() else f.exception()
            if isinstance(exc, PublishRefused):
                # Retrying cannot help: the broker's ACL or limits say no. Loud, and counted.
                self.stats.refused += 1
                log.error(
                    "broker refused %s (seq %d): %s; check this gateway's MQTT login and ACL",
                    item.topic,
                    item.seq,
                    exc,
                )
            elif f.cancelled() or exc is not None:
                self._retry.append(item)
            else:
                self.stats.published += 1

        fut.add_done_callback(done)

    async def _settle(self, mqtt: MqttClient) -> None:
        # Wait briefly for outstanding PUBACKs; anything not acknowledged is retried later,
        # in seq order.
        limit = self.settings.mqtt.max_inflight
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                for _ in range(limit):
                    await mqtt.inflight.acquire()
                for _ in range(limit):
                    mqtt.inflight.release()
        self._retry.sort(key=lambda o: o.seq)
