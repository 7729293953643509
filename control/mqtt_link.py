"""The control service's MQTT links: one persistent session each, reconnected with backoff.

The command link and the alert link are built the same way: a fixed client id and an MQTT 5
session that does not expire, so what gateways and the collector publish while the control
service restarts waits at the broker; and ``manual_ack``, so a message is acknowledged to the
broker only after it is in the database. If the service dies in between, the broker delivers
it again, and the records ignore the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from shelterwatch.backoff import Backoff
from shelterwatch.config import MqttSettings
from shelterwatch.mqtt_client import MqttClient

__all__ = ["host_client_id", "run_link"]

log = logging.getLogger(__name__)


def host_client_id(prefix: str) -> str:
    """``<prefix>-<hostname>``: stable across restarts, so the broker keeps the session (and
    what is queued in it); replicas differ by host name. Two replicas on one host, or two
    links of one replica, need ids of their own."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"{prefix}-{host or 'host'}"[:64]


def _leaf(exc: BaseException) -> BaseException:
    # A session's TaskGroup wraps what ended it; the log should name the cause itself.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def run_link(
    name: str,
    mqtt: MqttSettings,
    client_id: str,
    session: Callable[[MqttClient], Awaitable[None]],
    connected: asyncio.Event,
    *,
    while_down: str,
) -> None:
    """Connect, run ``session`` until the link fails, and again, until cancelled.

    ``name`` prefixes the log lines; ``while_down`` tells an operator what happens meanwhile.
    """
    backoff = Backoff(initial=0.5, maximum=mqtt.reconnect_max_s)
    down = False
    while True:
        try:
            async with MqttClient(mqtt, client_id, persistent=True, manual_ack=True) as client:
                log.info(
                    "%s: MQTT link to %s:%s %s (client id %s)",
                    name,
                    mqtt.host,
                    mqtt.port,
                    "back" if down else "up",
                    client_id,
                )
                down = False
                backoff.reset()
                connected.set()
                try:
                    await session(client)
                finally:
                    connected.clear()
        except Exception as exc:
            # Broker gone, a refused subscription, or the database failing under a message
            # (it stays unacknowledged and comes again): all are retried after a pause.
            # Logged once per outage, then quietly.
            cause = _leaf(exc)
            if not down:
                log.warning(
                    "%s: MQTT link down (%s: %s); %s",
                    name,
                    type(cause).__name__,
                    cause,
                    while_down,
                )
            else:
                log.debug("%s: MQTT link still down: %s", name, cause)
            down = True
        await asyncio.sleep(backoff.next())
