"""Publishing site postures on ``{p}/posture/{site}``, retained, over the command link.

A session task of the command service's MQTT session (one link per replica, as the CAP
feed): it publishes every stored posture not yet published, and looks again when woken (a
posture changed here) or every ``poll_s`` (one changed on another replica, or a claim lapsed).
"""

from __future__ import annotations

import asyncio
import logging

from control.conversions import records
from control.db import Database
from shelterwatch.contract import SitePosture, posture_topic
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import MqttClient

__all__ = ["PosturePublisher"]

log = logging.getLogger(__name__)

_CLAIM_MS = 30_000
_PUBLISH_TIMEOUT_S = 10.0
_REFUSED_RETRY_MS = 600_000


class PosturePublisher:
    def __init__(self, db: Database, prefix: str, replica: str, poll_s: float = 5.0) -> None:
        self.db = db
        self.prefix = prefix
        self.replica = replica
        self.poll_s = poll_s
        self.wake = asyncio.Event()

    async def run(self, client: MqttClient) -> None:
        while True:
            self.wake.clear()
            for site in await records.unpublished_postures(self.db, records.now_ms()):
                await self._publish(client, site)
            try:
                async with asyncio.timeout(self.poll_s):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def _publish(self, client: MqttClient, site: str) -> None:
        now = records.now_ms()
        row = await records.claim_posture(self.db, site, self.replica, now + _CLAIM_MS, now)
        if row is None:
            return  # another replica has it
        payload = SitePosture(
            posture=row.posture,  # type: ignore[arg-type]
            ts=row.updated_ms,
            order=row.order_id,
            kind=row.kind,  # type: ignore[arg-type]
            exercise=row.exercise,
        )
        topic = posture_topic(site, self.prefix)
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await client.publish(topic, payload.to_json(), qos=1, retain=True)
        except PublishRefused as exc:
            log.error(
                "conversions: the broker refused the posture of %s on %s: %s; allow the control "
                "service to publish there (deploy/mosquitto ACL). Trying again in %d min",
                site,
                topic,
                exc,
                _REFUSED_RETRY_MS // 60_000,
            )
            await records.release_posture(self.db, site, records.now_ms() + _REFUSED_RETRY_MS)
            return
        except (TimeoutError, ConnectError) as exc:
            await records.release_posture(self.db, site)
            raise ConnectError(f"no PUBACK for the posture of {site}") from exc
        if await records.mark_posture_published(self.db, site, row.updated_ms, records.now_ms()):
            log.info("conversions: published posture %s of %s on %s", row.posture, site, topic)
