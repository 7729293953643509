"""The alert service's MQTT link: one persistent session, reconnected with backoff.

Like the command link (control/commands/link.py), with its own client id: alerts raised while
the control service restarts wait at the broker, and each is acknowledged to the broker only
after it is in the database.
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
                    "alerts: MQTT link to %s:%s %s (client id %s)",
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
            # Broker gone, or the database failing under an alert (it stays unacknowledged
            # and comes again): retried after a pause, logged once per outage.
            cause = _leaf(exc)
            if not down:
                log.warning(
                    "alerts: MQTT link down (%s: %s); alerts wait at the broker until it is back",
                    type(cause).__name__,
                    cause,
                )
            else:
                log.debug("alerts: MQTT link still down: %s", cause)
            down = True
        await asyncio.sleep(backoff.next())
