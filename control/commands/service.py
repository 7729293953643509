"""The command service: signs and publishes commands, and records the gateways' answers.

``send`` audits the command, writes its record (``pending``) and wakes the publisher; it does
not wait for the broker. The publisher signs each command with the control service's Ed25519
key and publishes it at QoS 1 to ``{p}/gw/{gw}/cmd`` over the service's one MQTT session; the
``sent`` event records the broker's PUBACK. While the broker is down the command waits in the
database, and is published when the link is back, unless it expired first (then ``expired``).

Answers on ``{p}/gw/+/cmd/ack`` become events of their record and move its state (see
``states.py``); each is audited. A periodic sweep closes commands that can no longer end by
themselves (``timed_out``, or ``expired`` before publication).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, Self

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from control.audit import AuditRow, append_audit, append_audits
from control.commands import records
from control.commands.errors import CommandUnavailable, InvalidCommand
from control.commands.records import Outcome, now_ms
from control.commands.states import RecordState
from control.db import CommandRecord, Database
from control.mqtt_link import host_client_id, run_link
from control.settings import ControlSettings
from shelterwatch.contract import (
    SIREN_ACTIVATE,
    SIREN_CANCEL,
    CommandAck,
    CommandRequest,
    SirenOrder,
    TopicKind,
    Value,
    cmd_topic,
    is_slug,
    parse_topic,
)
from shelterwatch.errors import ConfigError, ConnectError, ContractError, PublishRefused
from shelterwatch.mqtt_client import Message, MqttClient
from shelterwatch.signing import load_private_key, sign_command

__all__ = ["MAX_TTL_S", "SERVICE_ACTOR", "AnswerListener", "CommandService", "SessionTask"]

log = logging.getLogger(__name__)

# The longest a command may stay valid. Gateways refuse longer ones (commands.max_lifetime_s,
# a day by default); an hour keeps a forgotten command from firing long after anyone expects.
MAX_TTL_S = 3600.0
# Who the audit trail names for the service's own verdicts (timed out, expired unsent).
SERVICE_ACTOR = "control-service"
# A command submitted on another replica (or before a restart) and still unpublished after
# this long is published by whichever replica is connected.
_ORPHAN_AGE_MS = 5_000
_PUBLISH_TIMEOUT_S = 10.0


# Called with (gateway, answer) for every well-formed answer, duplicates included (a listener
# must be idempotent), after the answer is in the command's record and before it is
# acknowledged to the broker: a listener that fails with a database error gets it again.
AnswerListener = Callable[[str, CommandAck], Awaitable[None]]
# Runs for the life of each MQTT session next to the command publisher (the CAP publisher):
# one link and one client id per replica, whatever else it publishes. It ends with the
# session; raising ends the session, which reconnects.
SessionTask = Callable[[MqttClient], Coroutine[Any, Any, None]]


class _State(enum.Enum):
    NEW = 1
    OPEN = 2
    CLOSED = 3


def _audit_params(request: CommandRequest) -> dict[str, object]:
    params: dict[str, object] = {
        "id": request.id,
        "action": request.action,
        "params": dict(request.params),
        "expires": request.expires,
    }
    if request.siren is not None:
        params["siren"] = request.siren.model_dump(mode="json", exclude_none=True)
    return params


def default_client_id() -> str:
    return host_client_id("shelterwatch-control")


class CommandService:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        *,
        client_id: str | None = None,
        sweep_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.client_id = client_id or settings.command_client_id or default_client_id()
        self._prefix = settings.mqtt.prefix
        self._grace_ms = int(settings.command_grace_s * 1000)
        self._sweep_interval_s = sweep_interval_s
        secret = settings.command_private_key.get_secret_value()
        try:
            self._key = load_private_key(secret) if secret else None
        except ConfigError as exc:
            raise ConfigError(f"command_private_key: {exc}") from exc
        # Set while the MQTT session is up; tests and health checks read it.
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._queued: set[str] = set()
        # Published (the broker's PUBACK came) but not yet recorded as sent: the database
        # failed in between. Recorded first on the next pass, and never published again.
        self._sent_unrecorded: dict[str, tuple[str, int]] = {}
        self._state = _State.NEW
        self._runner: asyncio.Task[None] | None = None
        self._listeners: list[AnswerListener] = []
        self._session_tasks: list[tuple[str, SessionTask]] = []

    def add_session_task(self, name: str, task: SessionTask) -> None:
        """Also run ``task`` in every MQTT session of the command link. Call it before the
        service opens, so that the first session runs it too."""
        if self._state is not _State.NEW:
            raise RuntimeError("add session tasks before the CommandService opens")
        self._session_tasks.append((name, task))

    def add_answer_listener(self, listener: AnswerListener) -> None:
        """Also hand every gateway answer to ``listener`` (the siren service's outcomes)."""
        self._listeners.append(listener)

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a CommandService opens once")
        self._state = _State.OPEN
        if self._key is None:
            log.warning("command_private_key is not set: commands cannot be sent")
        # One owned task for the service's life (the link and the sweep run under its
        # TaskGroup); the lifespan that enters us must not be cancelled by a failure in them.
        self._runner = asyncio.create_task(self._run(), name="command-service")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.CLOSED
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_link(
                    "commands",
                    self.settings.mqtt,
                    self.client_id,
                    self._session,
                    self.connected,
                    while_down="commands submitted now wait in the database and are published "
                    "when it is back",
                ),
                name="command-link",
            )
            tg.create_task(self._sweeper(), name="command-sweep")

    # -- the API --------------------------------------------------------------------------------

    async def send(
        self,
        gateway: str,
        device: str,
        action: str,
        params: Mapping[str, Value],
        actor: str,
        ttl_s: float = 30.0,
    ) -> CommandRecord:
        """Audit and record a command, and queue it for publication. Returns the record."""
        self._check_open()
        if not is_slug(gateway):
            raise InvalidCommand(f"gateway {gateway!r} is not a slug")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise InvalidCommand(f"ttl_s must be 0 < ttl_s <= {MAX_TTL_S:g}")
        now = now_ms()
        try:
            request = CommandRequest(
                id=f"cmd-{uuid.uuid4().hex}",
                device=device,
                action=action,
                params=dict(params),
                ts=now,
                expires=now + int(ttl_s * 1000),
                actor=actor,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidCommand(f"{where}: {first['msg']}") from exc
        record = await self._submit(gateway, request, target=f"{gateway}/{device}")
        log.info(
            "command %s from %s: %s %s/%s %s", request.id, actor, action, gateway, device, params
        )
        return record

    async def send_siren_activate(
        self, command_id: str, gateway: str, order: SirenOrder, actor: str, ttl_s: float
    ) -> CommandRecord:
        """Queue the one signed ``siren.activate`` of an activation to a gateway.

        ``command_id`` is derived from the activation and the gateway by the caller, so
        submitting it again (a retry, a second replica) returns the existing record and
        sends nothing more.
        """
        request = self._siren_request(
            command_id, SIREN_ACTIVATE, actor, ttl_s, siren=order, params={}
        )
        record = await self._submit(gateway, request, target=gateway)
        log.info(
            "command %s from %s: %s %s to %s on %s (%s)",
            command_id,
            actor,
            order.kind.value,
            order.signal.name if order.signal else "silent test",
            ",".join(order.sirens),
            gateway,
            order.activation,
        )
        return record

    async def send_siren_activates(
        self, orders: Sequence[tuple[str, str, SirenOrder]], actor: str, ttl_s: float
    ) -> list[CommandRecord]:
        """Queue an activation's ``siren.activate`` commands, one per gateway, together.

        ``orders`` are (command id, gateway, order). Their audit rows go into the chain in one
        transaction and their records in another, and the publisher is woken once, so a
        fan-out to fifty gateways leaves in one go. Ids recorded before are skipped (a retry,
        a second replica) and returned as they are. Returns every order's record.
        """
        requests = [
            (gateway, self._siren_request(cid, SIREN_ACTIVATE, actor, ttl_s, siren=o, params={}))
            for cid, gateway, o in orders
        ]
        for gateway, _request in requests:
            if not is_slug(gateway):
                raise InvalidCommand(f"gateway {gateway!r} is not a slug")
        known = await records.existing_ids(self.db, [r.id for _g, r in requests])
        # Recorded before (a retry, a second replica): returned as they are, sent once.
        earlier = [rec for cid in sorted(known) if (rec := await records.get(self.db, cid))]
        new = [(g, r) for g, r in requests if r.id not in known]
        if not new:
            return earlier
        try:
            # Audited before anything can be sent: no command leaves without its trace.
            await append_audits(
                self.db,
                [
                    AuditRow(
                        actor=r.actor,
                        action="command.send",
                        target=gateway,
                        params=_audit_params(r),
                        result=RecordState.PENDING.value,
                    )
                    for gateway, r in new
                ],
            )
        except Exception as exc:
            raise CommandUnavailable(
                f"the audit trail did not take the commands, so none was sent: {exc!r}"
            ) from exc
        try:
            made = await records.create_many(self.db, new)
        except IntegrityError:
            # Another replica recorded some of them first: one at a time, each once.
            made = [await self._submit(g, r, target=g) for g, r in new]
        for record in made:
            self._queued.add(record.id)
        self._wake.set()
        for gateway, r in new:
            assert r.siren is not None
            log.info(
                "command %s from %s: %s %s to %s on %s (%s)",
                r.id,
                actor,
                r.siren.kind.value,
                r.siren.signal.name if r.siren.signal else "silent test",
                ",".join(r.siren.sirens),
                gateway,
                r.siren.activation,
            )
        return [*earlier, *made]

    async def send_siren_cancel(
        self, command_id: str, gateway: str, activation: str, actor: str, ttl_s: float
    ) -> CommandRecord:
        """Queue a signed ``siren.cancel`` of ``activation`` to a gateway (idempotent by id)."""
        request = self._siren_request(
            command_id, SIREN_CANCEL, actor, ttl_s, siren=None, params={"activation": activation}
        )
        record = await self._submit(gateway, request, target=gateway)
        log.info("command %s from %s: cancel %s on %s", command_id, actor, activation, gateway)
        return record

    async def withdraw(self, command_id: str, detail: str, actor: str) -> bool:
        """Cancel a command not yet published; False if it was published already."""
        outcome = await records.withdraw(self.db, command_id, detail)
        if outcome is None:
            return False
        log.info("command %s withdrawn before publication: %s", command_id, detail)
        await self._audit(outcome, actor=actor)
        return True

    def _siren_request(
        self,
        command_id: str,
        action: str,
        actor: str,
        ttl_s: float,
        *,
        siren: SirenOrder | None,
        params: dict[str, Value],
    ) -> CommandRequest:
        self._check_open()
        if not 0 < ttl_s <= MAX_TTL_S:
            raise InvalidCommand(f"ttl_s must be 0 < ttl_s <= {MAX_TTL_S:g}")
        now = now_ms()
        try:
            return CommandRequest(
                id=command_id,
                action=action,
                params=params,
                siren=siren,
                ts=now,
                expires=now + int(ttl_s * 1000),
                actor=actor,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidCommand(f"{where}: {first['msg']}") from exc

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise CommandUnavailable("the command service is not running")
        if self._key is None:
            raise CommandUnavailable(
                "the control service has no command_private_key; commands cannot be signed"
            )

    async def _submit(self, gateway: str, request: CommandRequest, *, target: str) -> CommandRecord:
        """Audit, record and queue a command; an id recorded before is returned as it is."""
        if not is_slug(gateway):
            raise InvalidCommand(f"gateway {gateway!r} is not a slug")
        existing = await records.get(self.db, request.id)
        if existing is not None:
            return existing
        try:
            # Audited before anything can be sent: no command leaves without its trace.
            await append_audit(
                self.db,
                actor=request.actor,
                action="command.send",
                target=target,
                params=_audit_params(request),
                result=RecordState.PENDING.value,
            )
        except Exception as exc:
            raise CommandUnavailable(
                f"the audit trail did not take the command, so it was not sent: {exc!r}"
            ) from exc
        try:
            record = await records.create(self.db, gateway, request)
        except IntegrityError:
            # Another replica (or an earlier try) recorded the same id first: one command.
            again = await records.get(self.db, request.id)
            if again is None:
                raise
            return again
        self._queued.add(record.id)
        self._wake.set()
        return record

    async def get(self, command_id: str) -> CommandRecord | None:
        """The record with its events."""
        return await records.get(self.db, command_id)

    async def recent(
        self,
        gateway: str | None = None,
        limit: int = 100,
        *,
        gateways: Collection[str] | None = None,
    ) -> list[CommandRecord]:
        """The newest records first (without their events); only of ``gateways`` unless None."""
        return await records.list_records(self.db, gateway, limit, gateways)

    # -- the MQTT session -----------------------------------------------------------------------

    async def _session(self, client: MqttClient) -> None:
        await client.subscribe([f"{self._prefix}/gw/+/cmd/ack"], qos=1)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._receive(client), name="command-acks")
            tg.create_task(self._publisher(client), name="command-publisher")
            for name, task in self._session_tasks:
                tg.create_task(task(client), name=name)

    async def _receive(self, client: MqttClient) -> None:
        async for message in client.messages():
            await self._answer(message)
            # Only now: an answer lost between receipt and the database comes again.
            client.ack(message)

    async def _answer(self, message: Message) -> None:
        try:
            topic = parse_topic(message.topic, self._prefix)
            if topic.kind is not TopicKind.COMMAND_ACK:
                raise ContractError(f"{message.topic} is not an ack topic")
            ack = CommandAck.model_validate_json(message.payload)
        except (ContractError, ValidationError) as exc:
            log.warning("commands: dropped a malformed answer on %s: %s", message.topic, exc)
            return
        outcome = await records.record_answer(self.db, topic.gateway, ack)
        await self._tell_listeners(topic.gateway, ack)
        if outcome is None:
            return  # a duplicate delivery
        if outcome.unknown:
            # Someone published a command that did not come from this service (forged, or
            # signed with a leaked key if the gateway accepted it).
            refused = ack.state.value in ("rejected", "expired")
            level = logging.WARNING if refused else logging.ERROR
            log.log(
                level,
                "commands: gateway %s answered %s to command %s, which this service never sent: %s",
                topic.gateway,
                ack.state.value,
                ack.id,
                ack.detail,
            )
        elif ack.device is not None:
            log.debug("command %s: %s", ack.id, outcome.detail)
            # An answer about one siren is audited once, by the siren service, as that
            # siren's outcome in its activation (siren.outcome); a second row here would
            # double the audit trail's writes when a thousand sirens answer at once.
            return
        elif not outcome.moved:
            log.warning(
                "commands: gateway %s answered %s to command %s (now %s): %s",
                topic.gateway,
                ack.state.value,
                ack.id,
                outcome.record.state,
                ack.detail,
            )
        else:
            log.info("command %s: %s %s", ack.id, ack.state.value, ack.detail)
        await self._audit(outcome, actor=f"gateway:{topic.gateway}")

    async def _tell_listeners(self, gateway: str, ack: CommandAck) -> None:
        for listener in self._listeners:
            try:
                await listener(gateway, ack)
            except (SQLAlchemyError, OSError):
                raise  # the answer stays unacknowledged and comes again
            except Exception:
                # A bug in one listener must not stop every command's answers.
                log.exception("commands: a listener failed on answer %s from %s", ack.id, gateway)

    async def _publisher(self, client: MqttClient) -> None:
        # First what waited while the link was down (submitted here, on another replica, or
        # before a restart), then what is submitted from now on.
        await self._publish(client, await records.unsent(self.db))
        while True:
            try:
                async with asyncio.timeout(self._sweep_interval_s * 5):
                    await self._wake.wait()
            except TimeoutError:
                due = await records.unsent(self.db, submitted_before_ms=now_ms() - _ORPHAN_AGE_MS)
            else:
                self._wake.clear()
                ids, self._queued = self._queued, set()
                due = await records.unsent(self.db, ids=ids)
            await self._publish(client, due)

    async def _publish(self, client: MqttClient, due: list[CommandRecord]) -> None:
        for command_id, (topic, published_ms) in list(self._sent_unrecorded.items()):
            await records.mark_sent(self.db, command_id, topic, published_ms)
            del self._sent_unrecorded[command_id]
        due = [r for r in due if r.id not in self._sent_unrecorded]
        if not due:
            return
        # One pass at a time across replicas; what another replica published while this one
        # waited for its turn is no longer unsent (both look after a reconnection, and for
        # orphans), so each command leaves once.
        async with records.publishing(self.db):
            due = await records.unsent(self.db, ids=[r.id for r in due])
            # A siren fan-out queues one command per gateway at once: they leave together and
            # their PUBACKs are awaited afterwards, not one round trip after another. Chunks
            # stay within the client's in-flight bound.
            chunk = self.settings.mqtt.max_inflight
            for start in range(0, len(due), chunk):
                await self._publish_chunk(client, due[start : start + chunk])

    async def _publish_chunk(self, client: MqttClient, due: list[CommandRecord]) -> None:
        started: list[tuple[CommandRecord, str, int, asyncio.Future[None]]] = []
        for record in due:
            if record.expires_ms <= now_ms():
                await self._close(
                    record.id,
                    RecordState.EXPIRED,
                    "expired before it could be published (MQTT broker unreachable)",
                )
                continue
            if self._key is None:
                await self._close(record.id, RecordState.FAILED, "not sent: no command key")
                continue
            command = sign_command(records.request_of(record), self._key)
            topic = cmd_topic(record.gateway, self._prefix)
            published_ms = now_ms()
            puback = client.start_publish(topic, command.to_json(), qos=1)
            started.append((record, topic, published_ms, puback))
        for record, topic, published_ms, puback in started:
            try:
                async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                    await puback
            except PublishRefused as exc:
                # The broker will never take it (the ACL): say so instead of retrying.
                await self._close(record.id, RecordState.FAILED, f"not sent: {exc}")
                continue
            except TimeoutError as exc:
                raise ConnectError(f"no PUBACK for command {record.id}") from exc
            self._sent_unrecorded[record.id] = (topic, published_ms)
            await records.mark_sent(self.db, record.id, topic, published_ms)
            del self._sent_unrecorded[record.id]

    async def _close(self, command_id: str, state: RecordState, detail: str) -> None:
        outcome = await records.mark_final(self.db, command_id, state, detail)
        if outcome is not None:
            log.warning("command %s: %s: %s", command_id, state.value, detail)
            await self._audit(outcome, actor=SERVICE_ACTOR)

    # -- housekeeping ---------------------------------------------------------------------------

    async def _sweeper(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            try:
                outcomes = await records.sweep(self.db, self._grace_ms)
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("commands: the timeout sweep cannot reach the database: %s", exc)
                failing = True
                continue
            if failing:
                log.info("commands: the timeout sweep reaches the database again")
            failing = False
            for outcome in outcomes:
                log.warning("command %s: %s: %s", outcome.record.id, outcome.state, outcome.detail)
                await self._audit(outcome, actor=SERVICE_ACTOR)

    async def _audit(self, outcome: Outcome, actor: str) -> None:
        record = outcome.record
        params: dict[str, object] = {
            "id": record.id,
            "detail": outcome.detail,
            "record_state": record.state,
        }
        if outcome.unknown:
            params["unknown_command"] = True
        try:
            await append_audit(
                self.db,
                actor=actor,
                action=f"command.{outcome.state}",
                target=f"{record.gateway}/{record.device}" if record.device else record.gateway,
                params=params,
                result=outcome.state,
            )
        except Exception:
            # The outcome is in the command record already; losing the gateway's answer
            # because the audit trail failed would be worse than this logged gap.
            log.exception(
                "commands: could not audit %s of command %s (%s)",
                outcome.state,
                record.id,
                outcome.detail,
            )
