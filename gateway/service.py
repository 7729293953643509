"""The gateway service: pollers for every device, and the MQTT uplink that publishes them.

Pollers never wait for the uplink. Every data message goes into the durable outbox first
(which assigns its ``seq``) and leaves it only when the broker acknowledges it. After an
outage the uplink sends live data first and replays the backlog in seq order, marked
``historical``, at ``outbox.replay_per_s``. The gateway state message, republished every
``state_interval_s``, carries uptime, the outbox's depth and drops, and per-device health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import GatewayClock
from gateway.commands import CommandRunner, Target
from gateway.hub import ModbusHub, hubs_for
from gateway.outbox import Outbox, Row
from gateway.poller import DeviceEvent, DevicePoller
from gateway.settings import GatewaySettings
from shelterwatch import __version__
from shelterwatch.backoff import Backoff
from shelterwatch.contract import (
    CommandAck,
    DeviceData,
    DeviceHealth,
    DeviceState,
    GatewayState,
    OutboxHealth,
    PointInfo,
    cmd_ack_topic,
    cmd_topic,
    data_topic,
    device_state_topic,
    gateway_state_topic,
)
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import MqttClient, Will
from shelterwatch.profiles import Profile, load_profile

__all__ = ["Gateway", "GatewayStats"]

log = logging.getLogger(__name__)

_FETCH = 500  # rows read from the outbox at a time


@dataclass(slots=True)
class GatewayStats:
    queued: int = 0  # data messages put into the outbox
    published: int = 0  # acknowledged by the broker (and removed from the outbox)
    replayed: int = 0  # sent again as historical after an outage or restart
    refused: int = 0  # refused by the broker (ACL, size): logged and removed
    connects: int = 0


class Gateway:
    def __init__(self, settings: GatewaySettings, *, clock: GatewayClock | None = None) -> None:
        self.settings = settings
        # Every timestamp the gateway sends comes from here: monotonic, and honest about
        # clock steps (gateway/clock.py). Tests pass a clock they can step.
        self.clock = clock or GatewayClock()
        self.stats = GatewayStats()
        self._prefix = settings.mqtt.prefix
        self._started = time.monotonic()
        self._wakeup = asyncio.Event()
        self._published_seqs: list[int] = []
        self._states: dict[str, DeviceState] = {}
        self._dirty_states: set[str] = set()
        self._profiles: dict[str, Profile] = {}
        self.pollers: list[DevicePoller] = []
        self.connected = asyncio.Event()
        path = settings.outbox.path or Path("data") / f"{settings.gateway_id}-outbox.db"
        self.outbox = Outbox(path, settings.outbox)
        self._acks: deque[CommandAck] = deque()
        hubs = hubs_for(settings.devices)  # device id -> its link's hub, one per link
        targets: dict[str, Target] = {}
        self._hubs: dict[str, ModbusHub] = {hub.name: hub for hub in hubs.values()}
        for device in settings.devices:
            profile = load_profile(device.profile)
            self._profiles[device.id] = profile
            hub = hubs[device.id]
            targets[device.id] = Target(device, profile, hub)
            self.pollers.append(
                DevicePoller(
                    device,
                    profile,
                    hub,
                    self._on_event,
                    snapshot_interval_s=settings.snapshot_interval_s,
                    clock=self.clock.now_ms,
                )
            )

        cache = settings.commands.replay_cache_path or (
            Path("data") / f"{settings.gateway_id}-commands.db"
        )
        self.commands = CommandRunner(
            settings.commands, cache, targets, self._queue_ack, settings.sirens
        )

    # ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and publish until cancelled."""
        log.info(
            "gateway %s (site %s): %d devices, broker %s:%s, outbox %s",
            self.settings.gateway_id,
            self.settings.site,
            len(self.pollers),
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            self.outbox.path,
        )
        try:
            async with self.outbox, self.commands, asyncio.TaskGroup() as tg:
                for poller in self.pollers:
                    tg.create_task(poller.run(), name=f"poll-{poller.config.id}")
                tg.create_task(self.commands.run(), name="commands")
                tg.create_task(self._uplink(), name="uplink")
        finally:
            for hub in self._hubs.values():
                await hub.close()

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

        def build(seq: int) -> bytes:
            return DeviceData(
                ts=event.ts,
                seq=seq,
                site=self.settings.site,
                district=self.settings.district,
                kind=profile.kind,
                values=event.values,
                quality=event.quality,
                full=event.full,
            ).to_json()

        topic = data_topic(self.settings.gateway_id, event.device, self._prefix)
        await self.outbox.append(topic, build, self.clock.now_ms())
        self.stats.queued += 1
        self._wakeup.set()

    def _queue_ack(self, ack: CommandAck) -> None:
        # Outcomes wait here while the uplink is down and go out first when it is back.
        self._acks.append(ack)
        self._wakeup.set()

    async def gateway_state(self, online: bool = True) -> GatewayState:
        if not online:
            return self._offline_state()
        box = await self.outbox.stats()
        return GatewayState(
            online=True,
            ts=self.clock.now_ms(),
            site=self.settings.site,
            district=self.settings.district,
            version=__version__,
            devices=[p.config.id for p in self.pollers],
            uptime_s=round(time.monotonic() - self._started, 3),
            outbox=OutboxHealth(
                depth=box.depth, bytes=box.bytes, dropped=box.dropped, oldest_ts=box.oldest_ms
            ),
            health={
                p.config.id: DeviceHealth(
                    online=bool(p.online),
                    polls=p.polls,
                    errors=p.failures,
                    latency_ms=round(p.latency_ms, 3),
                )
                for p in self.pollers
            },
        )

    def _offline_state(self) -> GatewayState:
        return GatewayState(
            online=False,
            ts=self.clock.now_ms(),
            site=self.settings.site,
            district=self.settings.district,
            version=__version__,
            devices=[p.config.id for p in self.pollers],
        )

    # -- uplink -----------------------------------------------------------------------------------

    async def _uplink(self) -> None:
        s = self.settings
        backoff = Backoff(initial=0.5, maximum=s.mqtt.reconnect_max_s)
        state_topic = gateway_state_topic(s.gateway_id, self._prefix)
        failed_before = False
        while True:
            will = Will(state_topic, self._offline_state().to_json())
            try:
                # A persistent session: commands sent while the gateway restarts wait at the
                # broker (their expiry keeps a late one from running).
                async with MqttClient(
                    s.mqtt, f"shelterwatch-{s.gateway_id}", will=will, persistent=True
                ) as mqtt:
                    self.stats.connects += 1
                    log.info(
                        "gateway %s connected to %s:%s%s; %d messages wait in the outbox",
                        s.gateway_id,
                        s.mqtt.host,
                        s.mqtt.port,
                        " again" if failed_before else "",
                        self.outbox.depth,
                    )
                    failed_before = False
                    backoff.reset()
                    try:
                        await self._session(mqtt, state_topic)
                    except asyncio.CancelledError:
                        # A clean stop says goodbye itself; the will is for crashes.
                        with contextlib.suppress(ConnectError, TimeoutError):
                            async with asyncio.timeout(1):
                                await mqtt.publish(
                                    state_topic, self._offline_state().to_json(), retain=True
                                )
                        raise
            except ConnectError as exc:
                self.connected.clear()
                if not failed_before:
                    log.warning(
                        "gateway %s: MQTT uplink down (%s); polling goes on into the outbox",
                        s.gateway_id,
                        exc,
                    )
                failed_before = True
                # Age limits hold while the broker is away, too.
                await self.outbox.expire(self.clock.now_ms())
                await asyncio.sleep(backoff.next())
            except BaseException:
                self.connected.clear()
                raise

    async def _session(self, mqtt: MqttClient, state_topic: str) -> None:
        # Birth order: subscribe to commands, gateway state, device states, then data.
        # Snapshots are requested so a consumer that missed anything gets every point again.
        cmd = cmd_topic(self.settings.gateway_id, self._prefix)
        await mqtt.subscribe([cmd], qos=1)
        listener = asyncio.create_task(self._listen(mqtt, cmd), name="command-listener")
        try:
            await self._pump(mqtt, state_topic)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, mqtt: MqttClient, topic: str) -> None:
        try:
            async for message in mqtt.messages():
                # Brokers may hand over retained messages of other topics (amqtt does).
                if message.topic == topic:
                    await self.commands.submit(message.payload)
        except ConnectError:
            pass  # the pump notices the disconnect and ends the session

    async def _pump(self, mqtt: MqttClient, state_topic: str) -> None:
        await mqtt.publish(state_topic, (await self.gateway_state()).to_json(), retain=True)
        self._dirty_states.update(self._states)
        for poller in self.pollers:
            poller.request_snapshot()
        self.connected.set()
        # Everything already in the outbox is backlog: replayed as historical, in seq order,
        # once what is too old to keep has gone.
        await self.outbox.expire(self.clock.now_ms())
        live_from = self.outbox.next_seq
        live_cursor = live_from - 1
        replay_cursor = -1
        replay_rate = self.settings.outbox.replay_per_s
        replay_credit = 0.0
        last_refill = time.monotonic()
        next_state = time.monotonic() + self.settings.state_interval_s
        ack_topic = cmd_ack_topic(self.settings.gateway_id, self._prefix)
        try:
            while True:
                while self._acks:
                    await mqtt.publish(ack_topic, self._acks[0].to_json())
                    self._acks.popleft()
                while self._dirty_states:
                    device = self._dirty_states.pop()
                    await mqtt.publish(
                        device_state_topic(self.settings.gateway_id, device, self._prefix),
                        self._states[device].to_json(),
                        retain=True,
                    )
                await self._forget_published()
                sent = 0
                for row in await self.outbox.fetch(live_cursor, _FETCH):
                    await self._send(mqtt, row, historical=False)
                    live_cursor = row.seq
                    sent += 1
                now = time.monotonic()
                replay_credit = min(replay_rate, replay_credit + (now - last_refill) * replay_rate)
                last_refill = now
                backlog = replay_cursor < live_from - 1
                if backlog and replay_credit >= 1:
                    rows = await self.outbox.fetch(
                        replay_cursor, min(int(replay_credit), _FETCH), before_seq=live_from
                    )
                    for row in rows:
                        await self._send(mqtt, row, historical=True)
                        replay_cursor = row.seq
                    replay_credit -= len(rows)
                    sent += len(rows)
                    if not rows:
                        replay_cursor = live_from - 1
                        log.info("outbox backlog replayed")
                if now >= next_state:
                    next_state = now + self.settings.state_interval_s
                    await self.outbox.expire(self.clock.now_ms())
                    await mqtt.publish(
                        state_topic, (await self.gateway_state()).to_json(), retain=True
                    )
                if sent or self._acks:
                    continue
                # Idle: wait for new data, a disconnect, replay credit or the state timer.
                timeout = min(1.0, max(0.0, next_state - time.monotonic()))
                if backlog:
                    timeout = min(timeout, 1.0 / replay_rate)
                await self._idle(mqtt, timeout)
        finally:
            await self._settle(mqtt)

    async def _idle(self, mqtt: MqttClient, timeout: float) -> None:
        self._wakeup.clear()
        waiters = [
            asyncio.ensure_future(self._wakeup.wait()),
            asyncio.ensure_future(mqtt.wait_disconnected()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if not mqtt.connected:
            raise ConnectError("MQTT connection lost")

    async def _send(self, mqtt: MqttClient, row: Row, *, historical: bool) -> None:
        payload = row.payload
        if historical:
            data = DeviceData.model_validate_json(payload)
            payload = data.model_copy(update={"historical": True}).to_json()
            self.stats.replayed += 1
        await mqtt.inflight.acquire()
        try:
            fut = mqtt.start_publish(row.topic, payload, qos=1)
        except ConnectError:
            mqtt.inflight.release()
            raise

        def done(f: asyncio.Future[None]) -> None:
            mqtt.inflight.release()
            exc = None if f.cancelled() else f.exception()
            if exc is None and not f.cancelled():
                self.stats.published += 1
                self._published_seqs.append(row.seq)
            elif isinstance(exc, PublishRefused):
                # Retrying cannot help: the broker's ACL or limits say no. Loud, and counted.
                self.stats.refused += 1
                self._published_seqs.append(row.seq)
                log.error(
                    "broker refused %s (seq %d): %s; check this gateway's MQTT login and ACL",
                    row.topic,
                    row.seq,
                    exc,
                )
            # Otherwise the row stays in the outbox and is replayed after the reconnect.

        fut.add_done_callback(done)

    async def _forget_published(self) -> None:
        if self._published_seqs:
            done, self._published_seqs = self._published_seqs, []
            await self.outbox.remove(done)

    async def _settle(self, mqtt: MqttClient) -> None:
        # Wait briefly for outstanding PUBACKs, then forget what was acknowledged; the rest
        # stays in the outbox for the next connection.
        limit = self.settings.mqtt.max_inflight
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                for _ in range(limit):
                    await mqtt.inflight.acquire()
                for _ in range(limit):
                    mqtt.inflight.release()
        try:
            await self._forget_published()
        except Exception as exc:  # the rows stay; the broker sees them again as duplicates
            log.warning("could not remove acknowledged messages from the outbox: %s", exc)
