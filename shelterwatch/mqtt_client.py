"""A thin asyncio layer over paho-mqtt, with acknowledgement under the caller's control.

Why paho and not aiomqtt: the collector must acknowledge a QoS 1 message to the broker only
after the store has made it durable, so that a crash in between makes the broker deliver it
again. paho-mqtt 2.x has ``manual_ack``; aiomqtt does not expose it yet (its issue 345). This
module follows aiomqtt's design otherwise: no paho thread, paho's socket is driven from the
event loop with ``add_reader``/``add_writer``, and callbacks only resolve futures or put to a
queue. See docs/design.md.

One ``MqttClient`` is one connection. Reconnecting is the caller's loop, with backoff
(``shelterwatch.backoff``), because what to do after a reconnect differs per service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shelterwatch.config import MqttSettings
from shelterwatch.errors import ConnectError, PublishRefused

__all__ = ["Message", "MqttClient", "Will"]

log = logging.getLogger(__name__)

_SESSION_FOREVER = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class _State(Enum):
    NEW = 1
    CONNECTED = 2
    CLOSED = 3


class MqttClient:
    """An MQTT connection as an async context manager.

    ``persistent=True`` keeps the broker-side session across disconnects (MQTT 5 session
    expiry, or clean_session=False on 3.1.1), which needs a fixed ``client_id``.
    ``manual_ack=True`` leaves acknowledging received QoS 1 messages to ``ack()``.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        persistent: bool = False,
        manual_ack: bool = False,
        will: Will | None = None,
        receive_maximum: int = 1000,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._persistent = persistent
        self._v5 = settings.protocol == 5
        self._receive_maximum = receive_maximum
        self._state = _State.NEW
        self._loop = asyncio.get_running_loop()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._disconnected: asyncio.Future[None] = self._loop.create_future()
        self._pending_pub: dict[int, asyncio.Future[None]] = {}
        self._pending_sub: dict[int, asyncio.Future[list[int]]] = {}
        self._inflight = asyncio.Semaphore(settings.max_inflight)
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._misc_task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

        protocol = paho.MQTTv5 if self._v5 else paho.MQTTv311
        kwargs: dict[str, Any] = {}
        if not self._v5:
            kwargs["clean_session"] = not persistent
        self._paho = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
            **kwargs,
        )
        # paho's own window only has to be as wide as ours; the semaphore is the real bound.
        self._paho.max_inflight_messages_set(settings.max_inflight)
        self._paho.max_queued_messages_set(0)
        if settings.username is not None:
            self._paho.username_pw_set(settings.username, settings.password)
        if will is not None:
            self._paho.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_publish = self._on_publish
        self._paho.on_subscribe = self._on_subscribe
        self._paho.on_message = self._on_message
        self._paho.on_socket_open = self._on_socket_open
        self._paho.on_socket_close = self._on_socket_close
        self._paho.on_socket_register_write = self._on_socket_register_write
        self._paho.on_socket_unregister_write = self._on_socket_unregister_write

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def protocol(self) -> int:
        return self._settings.protocol

    @property
    def connected(self) -> bool:
        return self._state is _State.CONNECTED and not self._disconnected.done()

    # ---------------------------------------------------------------------------------------
    # Lifecycle

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 10.0) -> None:
        if self._state is not _State.NEW:
            raise RuntimeError("an MqttClient connects once; make a new one to reconnect")
        s = self._settings
        props: Properties | None = None
        kwargs: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = _SESSION_FOREVER if self._persistent else 0
            props.ReceiveMaximum = self._receive_maximum
            kwargs["clean_start"] = not self._persistent
        try:
            async with asyncio.timeout(timeout):
                # The TCP connect blocks; paho calls on_socket_open from the executor thread.
                rc = await self._loop.run_in_executor(
                    None,
                    lambda: self._paho.connect(
                        s.host, s.port, keepalive=s.keepalive_s, properties=props, **kwargs
                    ),
                )
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise ConnectError(f"MQTT connect to {s.host}:{s.port} failed: {rc}")
                self._misc_task = asyncio.create_task(self._misc_loop(), name="mqtt-misc")
                await self._connected
        except (OSError, TimeoutError) as exc:
            await self._teardown()
            raise ConnectError(
                f"cannot reach the MQTT broker at {s.host}:{s.port} ({exc or 'timed out'}); "
                "check that it runs and that mqtt.host/mqtt.port are right"
            ) from exc
        except BaseException:
            await self._teardown()
            raise
        self._state = _State.CONNECTED

    async def close(self) -> None:
        if self._state is _State.CLOSED:
            return
        was_connected = self._state is _State.CONNECTED and not self._disconnected.done()
        self._state = _State.CLOSED
        if was_connected:
            self._paho.disconnect()
            with contextlib.suppress(TimeoutError, ConnectError):
                async with asyncio.timeout(2):
                    await asyncio.shield(self._disconnected)
        await self._teardown()

    async def _teardown(self) -> None:
        if self._misc_task is not None:
            self._misc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._misc_task
            self._misc_task = None
        if self._sock is not None:
            self._unwatch(self._sock)
        # Closes the socket if paho still holds one; no callbacks of interest fire after this.
        self._paho._sock_close()
        self._fail_pending(ConnectError("MQTT connection closed"))
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        if not self._connected.done():
            self._connected.set_exception(ConnectError("MQTT connection closed"))
            self._connected.exception()  # mark retrieved

    async def _misc_loop(self) -> None:
        # Keepalive pings and retry timers; paho expects this about once a second.
        while True:
            await asyncio.sleep(1)
            self._paho.loop_misc()

    # ---------------------------------------------------------------------------------------
    # Operations

    async def wait_disconnected(self) -> None:
        """Return when the connection drops (or is closed)."""
        await asyncio.shield(self._disconnected)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1)."""
        await self.start_publish(topic, payload, qos=qos, retain=retain)

    def start_publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Publish without waiting; the future resolves on PUBACK (use with ``inflight``)."""
        if not self.connected:
            raise ConnectError("not connected to the MQTT broker")
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        fut: asyncio.Future[None] = self._loop.create_future()
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            fut.set_exception(ConnectError(f"publish to {topic} failed: {info.rc}"))
        elif qos == 0 or info.is_published():
            fut.set_result(None)
        else:
            self._pending_pub[info.mid] = fut
        return fut

    @property
    def inflight(self) -> asyncio.Semaphore:
        """Bounds QoS 1 publishes awaiting PUBACK (paho loses messages past 65,535)."""
        return self._inflight

    async def subscribe(self, filters: list[str], qos: int = 1, timeout: float = 10.0) -> None:
        if not self.connected:
            raise ConnectError("not connected to the MQTT broker")
        rc, mid = self._paho.subscribe([(f, qos) for f in filters])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectError(f"subscribe failed: {rc}")
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        self._pending_sub[mid] = fut
        async with asyncio.timeout(timeout):
            granted = await fut
        refused = [f for f, code in zip(filters, granted, strict=False) if code >= 0x80]
        if refused:
            raise ConnectError(f"the broker refused the subscription to {refused}")

    def ack(self, message: Message) -> None:
        """Acknowledge a message received with ``manual_ack``; call once it is durable."""
        if message.qos > 0:
            self._paho.ack(message.mid, message.qos)

    async def messages(self) -> AsyncIterator[Message]:
        """Received messages, until the connection drops (then ConnectError)."""
        while True:
            if not self._queue.empty():
                yield self._queue.get_nowait()
                continue
            if self._disconnected.done():
                raise ConnectError("MQTT connection lost")
            get: asyncio.Future[Message] = asyncio.ensure_future(self._queue.get())
            lost: asyncio.Future[None] = self._disconnected
            try:
                await asyncio.wait((get, lost), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if get.done() and not get.cancelled():
                yield get.result()

    async def receive_batch(self, max_items: int, max_wait: float) -> list[Message]:
        """Wait for a first message, then gather more for up to ``max_wait`` seconds.

        Raises ConnectError when the connection drops with nothing received.
        """
        batch: list[Message] = []
        async for first in self.messages():
            batch.append(first)
            break
        deadline = self._loop.time() + max_wait
        queue = self._queue
        while len(batch) < max_items:
            while not queue.empty() and len(batch) < max_items:
                batch.append(queue.get_nowait())
            remaining = deadline - self._loop.time()
            if len(batch) >= max_items or remaining <= 0 or self._disconnected.done():
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await queue.get())
            except TimeoutError:
                break
        return batch

    # ---------------------------------------------------------------------------------------
    # paho callbacks: they only resolve futures or queue messages.

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, rc: ReasonCode, _props: Any) -> None:
        if self._connected.done():
            return
        if rc.is_failure:
            self._connected.set_exception(
                ConnectError(f"the MQTT broker refused the connection: {rc}")
            )
        else:
            self._connected.set_result(None)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: ReasonCode, _props: Any) -> None:
        if self._state is not _State.CLOSED:
            log.warning(
                "MQTT connection to %s:%s lost: %s", self._settings.host, self._settings.port, rc
            )
        self._fail_pending(ConnectError(f"MQTT connection lost: {rc}"))
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        if not self._connected.done():
            self._connected.set_exception(ConnectError(f"MQTT connection refused: {rc}"))

    def _fail_pending(self, exc: ConnectError) -> None:
        for fut in self._pending_pub.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # an unawaited failure is not an error worth a warning
        self._pending_pub.clear()
        for sfut in self._pending_sub.values():
            if not sfut.done():
                sfut.set_exception(exc)
                sfut.exception()
        self._pending_sub.clear()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _props: Any) -> None:
        fut = self._pending_pub.pop(mid, None)
        if fut is None or fut.done():
            return
        # MQTT 5 brokers answer a refused publish (not authorised, too large) with a PUBACK
        # whose reason code is a failure; it must not count as delivered.
        if rc.is_failure:
            fut.set_exception(PublishRefused(f"the broker refused the publish: {rc}"))
        else:
            fut.set_result(None)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _props: Any) -> None:
        fut = self._pending_sub.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result([int(getattr(c, "value", c)) for c in codes])

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        self._queue.put_nowait(
            Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)
        )

    # Socket plumbing: paho's socket is read and written from the event loop.

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        self._loop.call_soon_threadsafe(self._watch, sock)

    def _watch(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        # Read until the socket is empty: one packet per wakeup would cost a syscall each.
        self._paho.loop_read(max_packets=1000)

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        self._unwatch(sock)

    def _unwatch(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if self._sock is sock:
            self._sock = None

    def _on_socket_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._loop.call_soon_threadsafe(self._set_writer, sock, True)

    def _on_socket_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        # Through the loop's queue as well, so it cannot overtake a pending add_writer.
        self._loop.call_soon_threadsafe(self._set_writer, sock, False)

    def _set_writer(self, sock: socket.socket, on: bool) -> None:
        if sock.fileno() < 0:
            return  # closed in the meantime
        if on:
            self._loop.add_writer(sock, self._paho.loop_write)
        else:
            self._loop.remove_writer(sock)
