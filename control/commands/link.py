"""The control service's MQTT link: one persistent session, reconnected with backoff.

The session is persistent (fixed client id, MQTT 5 session expiry) so that acks published
while the control service restarts wait at the broker. Received acks are acknowledged to the
broker only after they are in the database (``manual_ack``): if the service dies in between,
the broker delivers them again, and the records ignore the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shelterwatch.backoff import Backoff
from shelterwatch.config import MqttSettings
from shelterwatch.mqtt_client import MqttClient

__all__ = ["run_link"]

log = logging.getLogger(__name__)


def _leaf(exc: BaseException) -> BaseException:
    # A session's TaskGroup wraps what ended it; the log should name the cause itself.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def run_link(
    mqtt: MqttSettings,
    client_id: str,
    session: Callable[[MqttClient], Awaitable[None]],
    connected: asyncio.Event,
) -> None:
    """Connect, run ``session`` until the link fails, and again, until cancelled."""
    backoff = Backoff(initial=0.5, maximum=mqtt.reconnect_max_s)
    down = False
    while True:
        try:
            async with MqttClient(mqtt, client_id, persistent=True, manual_ack=True) as client:
                log.info(
                    "commands: MQTT link to %s:%s %s (client id %s)",
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
            # Broker gone, a refused subscription, or the database failing under an ack (that
            # ack stays unacknowledged and comes again): all are retried after a pause. Log
            # once per outage, then quietly.
            cause = _leaf(exc)
            if not down:
                log.warning(
                    "commands: MQTT link down (%s: %s); commands submitted now wait in the "
                    "database and are published when it is back",
                    type(cause).__name__,
                    cause,
                )
            else:
                log.debug("commands: MQTT link still down: %s", cause)
            down = True
        await asyncio.sleep(backoff.next())
