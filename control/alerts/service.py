"""The alert service: records the alert engine's events and notifies webhooks.

It subscribes to ``{p}/alert/#`` over its own persistent MQTT session (QoS 1, its own fixed
client id) and acknowledges each message to the broker only after it is in the database, so an
alert raised while the control service is down or restarting is recorded when it is back.
Zero-length payloads (the engine removing a retained raise) are ignored.

Notifications are rows in ``alert_notifications``, queued in the same transaction as the
change that causes them; a delivery loop sends them (signed, see webhooks.py), retries with
capped exponential backoff and jitter, and gives up after ``webhook_max_attempts``, recording
the failure on the alert. A sweep repeats the notification of an unacknowledged critical alert
every ``repeat_critical_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Self

import httpx
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from control.alerts import records
from control.alerts.errors import AlertAlreadyAcknowledged, AlertNotFound, AlertsUnavailable
from control.alerts.webhooks import deliver, retry_delay
from control.areas import Scope
from control.audit import append_audit
from control.db import Database
from control.db.models import AlertNotification, AlertRecord
from control.mqtt_link import host_client_id, run_link
from control.settings import ControlSettings, WebhookSettings
from shelterwatch.contract import Alert, TopicKind, parse_topic
from shelterwatch.errors import ContractError
from shelterwatch.mqtt_client import Message, MqttClient

__all__ = ["AlertService", "default_client_id"]

log = logging.getLogger(__name__)

# Deliveries in flight at once; one slow receiver must not hold up the others.
_PARALLEL_DELIVERIES = 8
# The delivery loop looks for due rows at least this often (rows queued by another replica,
# or whose lease ran out).
_MAX_IDLE_S = 5.0


class _State(enum.Enum):
    NEW = 1
    OPEN = 2
    CLOSED = 3


def default_client_id() -> str:
    # Not the command link's id, or the broker would drop one connection for the other.
    return host_client_id("shelterwatch-control-alerts")


class AlertService:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        *,
        client_id: str | None = None,
        sweep_interval_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._alerts = settings.alerts
        self.client_id = client_id or self._alerts.client_id or default_client_id()
        self._prefix = settings.mqtt.prefix
        self._webhooks: dict[str, WebhookSettings] = {w.name: w for w in self._alerts.webhooks}
        repeat = self._alerts.repeat_critical_s
        # Often enough that a repeat is late by a fraction of its interval at most.
        self._sweep_interval_s = sweep_interval_s or (min(5.0, repeat / 4) if repeat else 5.0)
        # A claimed delivery is someone else's to retry only after its attempt surely ended.
        self._lease_ms = int((self._alerts.webhook_timeout_s + 30) * 1000)
        # Set while the MQTT session is up; tests and health checks read it.
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._state = _State.NEW
        self._runner: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("an AlertService opens once")
        self._state = _State.OPEN
        # No redirects: a signed alert goes to the configured URL or nowhere.
        self._http = httpx.AsyncClient(follow_redirects=False)
        self._runner = asyncio.create_task(self._run(), name="alert-service")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.CLOSED
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_link(
                    "alerts",
                    self.settings.mqtt,
                    self.client_id,
                    self._session,
                    self.connected,
                    while_down="alerts wait at the broker until it is back",
                ),
                name="alert-link",
            )
            tg.create_task(self._deliverer(), name="alert-deliveries")
            if self._alerts.repeat_critical_s and self._webhooks:
                tg.create_task(self._repeater(), name="alert-repeats")

    # -- the API --------------------------------------------------------------------------------

    async def acknowledge(
        self, alert_id: int, actor: str, comment: str, scope: Scope | None = None
    ) -> AlertRecord:
        """A person acknowledges an alert: audited, then recorded. The first one stands.
        An alert of a site outside ``scope`` is not found, exactly like an unknown id."""
        if self._state is not _State.OPEN:
            raise AlertsUnavailable("the alert service is not running")
        current = await records.get(self.db, alert_id)
        if current is None or (scope is not None and not scope.has_site(current.site)):
            raise AlertNotFound(f"no alert {alert_id}")
        if current.acked_by is not None:
            raise AlertAlreadyAcknowledged(current.acked_by)
        target = f"alert:{alert_id} {current.site}/{current.rule}/{current.device}"
        # Audited before it is recorded: no acknowledgement without its trace. (The audit
        # middleware also records the HTTP request; this row says what it meant.)
        try:
            await append_audit(
                self.db,
                actor=actor,
                action="alerts.ack",
                target=target,
                params={"comment": comment},
                result="acknowledged",
            )
        except Exception as exc:
            raise AlertsUnavailable(
                f"the audit trail did not take the acknowledgement, so it was not recorded: {exc!r}"
            ) from exc
        outcome = await records.acknowledge(
            self.db, alert_id, actor, comment, list(self._webhooks.values())
        )
        if outcome.record is None:
            raise AlertNotFound(f"no alert {alert_id}")
        if outcome.already_by is not None:
            # Someone else's acknowledgement landed between our look and our write.
            await append_audit(
                self.db,
                actor=actor,
                action="alerts.ack",
                target=target,
                params={"comment": comment},
                result=f"refused: already acknowledged by {outcome.already_by}",
            )
            raise AlertAlreadyAcknowledged(outcome.already_by)
        log.info("alert %s (%s) acknowledged by %s: %s", alert_id, target, actor, comment)
        self._wake.set()
        return outcome.record

    async def get(self, alert_id: int, scope: Scope | None = None) -> AlertRecord | None:
        """The alert with its events; None also for one of a site outside ``scope``."""
        record = await records.get(self.db, alert_id)
        if record is None or (scope is not None and not scope.has_site(record.site)):
            return None
        return record

    async def notifications(self, alert_id: int) -> list[AlertNotification]:
        return await records.notifications_of(self.db, alert_id)

    async def recent(
        self,
        *,
        active_only: bool = True,
        site: str | None = None,
        severity: str | None = None,
        limit: int = 100,
        scope: Scope | None = None,
    ) -> list[AlertRecord]:
        return await records.list_alerts(
            self.db,
            active_only=active_only,
            site=site,
            severity=severity,
            limit=limit,
            sites=scope.sites if scope is not None else None,
        )

    # -- the MQTT session -----------------------------------------------------------------------

    async def _session(self, client: MqttClient) -> None:
        await client.subscribe([f"{self._prefix}/alert/#"], qos=1)
        async for message in client.messages():
            await self._record(message)
            # Only now: an alert lost between receipt and the database comes again.
            client.ack(message)

    async def _record(self, message: Message) -> None:
        if not message.payload:
            return  # the engine removing a retained raise; the cleared event said it all
        try:
            topic = parse_topic(message.topic, self._prefix)
            if topic.kind is not TopicKind.ALERT:
                raise ContractError(f"{message.topic} is not an alert topic")
            alert = Alert.model_validate_json(message.payload)
        except (ContractError, ValidationError) as exc:
            log.warning("alerts: dropped a malformed alert on %s: %s", message.topic, exc)
            return
        applied = await records.record_event(
            self.db, topic.site, topic.rule, topic.device, alert, list(self._webhooks.values())
        )
        if applied is None:
            return
        record = applied.record
        level = logging.WARNING if applied.event == records.RAISED else logging.INFO
        log.log(
            level,
            "alert %s %s/%s/%s %s (%s): %s",
            record.id,
            record.site,
            record.rule,
            record.device,
            applied.event,
            record.severity,
            alert.message,
        )
        if applied.queued:
            self._wake.set()

    # -- notifications --------------------------------------------------------------------------

    async def _repeater(self) -> None:
        repeat_ms = int(self._alerts.repeat_critical_s * 1000)
        failing = False
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            try:
                repeated = await records.repeat_due(
                    self.db, repeat_ms, list(self._webhooks.values())
                )
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("alerts: the repeat sweep cannot reach the database: %s", exc)
                failing = True
                continue
            failing = False
            if repeated:
                log.warning("alerts: %d unacknowledged critical alert(s) notified again", repeated)
                self._wake.set()

    async def _deliverer(self) -> None:
        failing = False
        while True:
            try:
                due = await records.due_notifications(self.db)
                if due:
                    limit = asyncio.Semaphore(_PARALLEL_DELIVERIES)
                    async with asyncio.TaskGroup() as tg:
                        for notification in due:
                            tg.create_task(self._attempt(notification, limit))
                    continue
                next_ts = await records.next_due_ts(self.db)
                failing = False
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("alerts: deliveries cannot reach the database: %s", exc)
                failing = True
                next_ts = None
            wait = _MAX_IDLE_S
            if next_ts is not None:
                wait = min(wait, max(0.0, (next_ts - records.now_ms()) / 1000))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    async def _attempt(self, notification: AlertNotification, limit: asyncio.Semaphore) -> None:
        async with limit:
            try:
                await self._try(notification)
            except (SQLAlchemyError, OSError) as exc:
                # The row keeps its lease and is tried again after it; the others go on.
                log.warning("alerts: delivery %s: the database failed: %s", notification.id, exc)

    async def _try(self, notification: AlertNotification) -> None:
        if not await records.claim(self.db, notification, self._lease_ms):
            return  # another replica took it
        attempts = notification.attempts + 1
        webhook = self._webhooks.get(notification.webhook)
        if webhook is None:
            await records.finish_attempt(
                self.db,
                notification.id,
                ok=False,
                detail=f"webhook {notification.webhook} is no longer configured",
                retry_at=None,
            )
            return
        assert self._http is not None
        try:
            result = await deliver(
                self._http,
                webhook,
                notification.id,
                notification.body.encode(),
                self._alerts.webhook_timeout_s,
            )
        except asyncio.CancelledError:
            # Stopping mid-attempt: hand it back now rather than after the lease.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await records.release(self.db, notification.id)
            raise
        retry_at: int | None = None
        if not result.ok and not result.permanent and attempts < self._alerts.webhook_max_attempts:
            delay = retry_delay(
                attempts,
                self._alerts.webhook_backoff_initial_s,
                self._alerts.webhook_backoff_max_s,
            )
            retry_at = records.now_ms() + int(delay * 1000)
        row = await records.finish_attempt(
            self.db, notification.id, ok=result.ok, detail=result.detail, retry_at=retry_at
        )
        if result.ok or row is None:
            log.debug("alerts: %s delivered to %s", notification.id, webhook.name)
        elif retry_at is None:
            log.error(
                "alerts: gave up on the %s notification of alert %s to webhook %s after "
                "%d attempt(s): %s",
                notification.event,
                notification.alert_id,
                webhook.name,
                attempts,
                result.detail,
            )
        else:
            log.warning(
                "alerts: webhook %s failed (%s), attempt %d; retrying in %.1f s",
                webhook.name,
                result.detail,
                attempts,
                (retry_at - records.now_ms()) / 1000,
            )
