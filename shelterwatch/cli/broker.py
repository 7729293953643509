"""The demo's embedded MQTT broker (amqtt), with workarounds for its known defects.

amqtt 0.12.1 never queues messages for an offline persistent session when the client logged
in anonymously. The demo wants both a persistent collector session and a plain
``mosquitto_sub`` that needs no login, so ``OpenAuthPlugin`` admits every client without
marking its session anonymous. This broker is for a demo on one machine: it binds to
loopback only. Deployments use Mosquitto with logins and ACLs (see deploy/).
"""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

__all__ = ["EmbeddedBroker", "OpenAuthPlugin"]


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    async def authenticate(self, *, session: Session) -> bool | None:
        return True


class EmbeddedBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {f"{__name__}.OpenAuthPlugin": {}},
        }
        self._broker = Broker(config)

    async def __aenter__(self) -> EmbeddedBroker:
        # amqtt logs every packet at INFO; the demo's own log is what a person wants to read.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        await self._broker.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._broker.shutdown()
