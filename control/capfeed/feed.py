"""The CAP feed: stores a CAP message for each audible activation and test-day run, and
publishes it on ``{p}/cap`` over the command service's MQTT session. Lifespan key ``cap``.

Nothing here may hold back a siren. The siren and schedule services call the hooks after
the sirens have their commands; a message that cannot be built is logged and audited
(``cap.error``), and the sirens sound regardless. A built message is stored first, then
published at QoS 1 by whichever replica's link is up (``records.claim``), then audited
(``cap.publish``). While the broker is down messages wait in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import select

from control.audit import append_audit
from control.cap import CapSender, MsgType
from control.capfeed import records
from control.capfeed.outbound import Outgoing, alert_of, cancel_of, identifier_of, programme_of
from control.commands import CommandService
from control.db import CapMessage, Database, SirenPost
from control.schedules.ports import ProgrammeRun
from control.settings import ControlSettings
from control.sirens import inventory
from control.sirens import records as siren_records
from shelterwatch.contract import cap_topic
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signals import SignalDefinition

__all__ = ["SERVICE_ACTOR", "CapFeed"]

log = logging.getLogger(__name__)

SERVICE_ACTOR = "control-service"
# How long a replica's claim on a message keeps the others off it.
_CLAIM_MS = 30_000
# After the broker refused a message (its ACL), try it again this much later.
_REFUSED_RETRY_MS = 600_000
_PUBLISH_TIMEOUT_S = 10.0


class CapFeed:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        commands: CommandService,
        signals: Mapping[str, SignalDefinition],
        *,
        poll_s: float = 5.0,
    ) -> None:
        self.db = db
        self.signals = signals
        self._cfg = settings.cap
        self._zone = ZoneInfo(settings.sirens.timezone)
        self._topic = cap_topic(settings.mqtt.prefix)
        self._replica = commands.client_id
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self.sender = CapSender(
            self._cfg.sender, self._cfg.sender_name, self._cfg.sender_name_en, self._cfg.contact
        )
        if self._cfg.enabled and self._cfg.publish_mqtt:
            commands.add_session_task("cap-publisher", self._publisher)

    # -- hooks (control.sirens.service.ActivationListener, schedules' ProgrammeListener) ------

    async def activation_dispatched(self, activation_id: str, actor: str) -> None:
        async def build() -> Outgoing | None:
            activation = await siren_records.get(self.db, activation_id)
            return await alert_of(self.db, activation, self.sender, self.signals, self._zone)

        await self._store(f"CAP alert of {activation_id}", activation_id, actor, build)

    async def activation_cancelled(self, activation_id: str, actor: str) -> None:
        async def build() -> Outgoing | None:
            alert = await records.find(
                self.db, records.OUT, self.sender.id, identifier_of(activation_id, MsgType.ALERT)
            )
            if alert is None:
                return None  # nothing was published, so there is nothing to withdraw
            activation = await siren_records.get(self.db, activation_id)
            posts = await self._posts([t.siren for t in activation.targets])
            return cancel_of(activation, alert, posts, self.sender, self.signals, self._zone)

        await self._store(f"CAP cancel of {activation_id}", activation_id, actor, build)

    async def programme_fired(self, run: ProgrammeRun) -> None:
        async def build() -> Outgoing | None:
            posts = await self._targets(run.sirens, run.groups)
            return programme_of(run, list(posts), self.sender, self.signals)

        what = f"CAP test-day programme of schedule {run.schedule}"
        await self._store(what, f"schedule:{run.schedule}", run.actor, build)

    async def _store(
        self,
        what: str,
        target: str,
        actor: str,
        build: Callable[[], Awaitable[Outgoing | None]],
    ) -> None:
        if not self._cfg.enabled:
            return
        try:
            message = await build()
            if message is None:
                return
            row = await records.insert(self.db, message.values(self.sender.id, actor))
        except Exception as exc:
            # A bug or a bad inventory row must not reach the sirens: they sound anyway.
            log.error(
                "cap: %s not built: %s: %s. The sirens are not affected; the public "
                "channels get no CAP message for it (fix the cause, see docs/cap.md)",
                what,
                type(exc).__name__,
                exc,
            )
            await self._audit("cap.error", target, {"message": what, "error": str(exc)}, "failed")
            return
        if row is None:
            return  # built before (a retry, or another replica): stored once
        log.info(
            "cap: stored %s %s (%s %s)", what, message.identifier, message.status, message.msg_type
        )
        self._wake.set()

    async def _posts(self, ids: list[str]) -> tuple[SirenPost, ...]:
        async with self.db.session() as s:
            rows = await s.scalars(select(SirenPost).where(SirenPost.id.in_(ids)))
            return tuple(rows)

    async def _targets(self, sirens: tuple[str, ...], groups: tuple[str, ...]) -> list[SirenPost]:
        return await inventory.resolve(self.db, sirens=list(sirens), groups=list(groups))

    # -- publishing -----------------------------------------------------------------------------

    async def _publisher(self, client: MqttClient) -> None:
        while True:
            self._wake.clear()
            await self._publish_due(client)
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass  # look for what other replicas stored, or claims that lapsed

    async def _publish_due(self, client: MqttClient) -> None:
        for row_id in await records.unpublished(self.db, records.now_ms()):
            row = await records.claim(self.db, row_id, self._replica, records.now_ms() + _CLAIM_MS)
            if row is None:
                continue  # another replica has it
            await self._publish(client, row)

    async def _publish(self, client: MqttClient, row: CapMessage) -> None:
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await client.publish(self._topic, row.xml.encode("utf-8"), qos=1)
        except PublishRefused as exc:
            log.error(
                "cap: the broker refused %s on %s: %s; allow the control service to publish "
                "there (deploy/mosquitto ACL). Trying again in %d min",
                row.identifier,
                self._topic,
                exc,
                _REFUSED_RETRY_MS // 60_000,
            )
            await records.release(self.db, row.id, records.now_ms() + _REFUSED_RETRY_MS)
            return
        except (TimeoutError, ConnectError) as exc:
            await records.release(self.db, row.id)
            raise ConnectError(f"no PUBACK for CAP message {row.identifier}") from exc
        if not await records.mark_published(self.db, row.id, self._topic):
            return
        log.info(
            "cap: published %s (%s %s) on %s", row.identifier, row.status, row.msg_type, self._topic
        )
        await self._audit(
            "cap.publish",
            row.activation or f"schedule:{row.schedule}",
            {
                "identifier": row.identifier,
                "sender": row.sender,
                "status": row.status,
                "msg_type": row.msg_type,
                "references": row.references,
                "topic": self._topic,
            },
            "published",
        )

    async def _audit(
        self, action: str, target: str, params: dict[str, object], result: str
    ) -> None:
        try:
            await append_audit(
                self.db,
                actor=SERVICE_ACTOR,
                action=action,
                target=target,
                params=params,
                result=result,
            )
        except Exception:
            # The message row holds the facts; a gap in the trail is an operator's to see.
            log.exception("cap: could not audit %s of %s", action, target)

    # -- reading --------------------------------------------------------------------------------

    async def recent(
        self,
        *,
        activation: str | None = None,
        direction: str | None = None,
        msg_type: str | None = None,
        limit: int = 100,
        sites: frozenset[str] | None = None,
        schedules: Collection[str] | None = None,
    ) -> list[CapMessage]:
        """Newest first; ``sites`` and ``schedules``: only those a caller's area reaches
        (records.list_messages)."""
        return await records.list_messages(
            self.db,
            activation=activation,
            direction=direction,
            msg_type=msg_type,
            limit=limit,
            sites=sites,
            schedules=schedules,
        )

    async def get(self, identifier: str) -> CapMessage | None:
        return await records.get(self.db, identifier)
