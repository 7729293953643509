"""The alert engine at the collector's edges: MQTT publishing, store events, persisted state.

One ``AlertService`` per collector. Every step that changes the engine runs under ``lock``
and goes: feed the engine → store the alert events with the batch → publish them → commit the
engine's state; only then does the collector acknowledge the batch. If any of it fails, the
engine is reloaded from the last commit before its next use, so the redelivered batch
produces the same events again (see state.py for why that is safe).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from collector.alerts.engine import AlertEngine, AlertEvent
from collector.alerts.rules import RulePack, load_rules
from collector.alerts.state import AlertStateFile
from collector.settings import AlertSettings
from shelterwatch.contract import alert_topic
from shelterwatch.errors import ContractError, PublishRefused
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store import FieldValue, Sample

__all__ = ["ALERT_MEASUREMENT", "AlertService", "alert_sample"]

log = logging.getLogger(__name__)

ALERT_MEASUREMENT = "alert"


def alert_sample(event: AlertEvent) -> Sample:
    """An alert event as a store record: measurement ``alert``.

    Tags: ``site``, ``gateway`` = the rule name, ``device``. The rule is a tag because two
    rules can fire on one device at the same millisecond, and the store identifies a point by
    measurement, tags and time: with the rule only in a field, one event would overwrite the
    other. The gateway the data came through is the field ``source_gateway``.
    """
    a = event.alert
    fields: dict[str, FieldValue] = {
        "rule": event.rule,
        "active": a.active,
        "severity": a.severity,
        "kind": a.kind,
        "message": a.message,
        "repeat": event.repeat,
    }
    if a.raised_ts is not None:
        fields["raised_ts"] = a.raised_ts
    if a.point:
        fields["point"] = a.point
    # One type per field name, as InfluxDB requires: numbers in `value`, the rest as text.
    if isinstance(a.value, int | float) and not isinstance(a.value, bool):
        fields["value"] = float(a.value)
    elif a.value is not None:
        fields["value_text"] = str(a.value).lower() if isinstance(a.value, bool) else a.value
    if a.predicted_ts is not None:
        fields["predicted_ts"] = a.predicted_ts
    if event.gateway:
        fields["source_gateway"] = event.gateway
    return Sample(ALERT_MEASUREMENT, event.site, event.rule, event.device, a.ts, fields)


class AlertService:
    def __init__(self, settings: AlertSettings, prefix: str, pack: RulePack | None = None) -> None:
        self.settings = settings
        self.prefix = prefix
        # Loaded (and validated) here, so a broken rule file stops the collector at start.
        self.pack = pack if pack is not None else load_rules(settings.rules_path)
        self.lock = asyncio.Lock()
        self.published = 0
        self.refused = 0
        self._state = AlertStateFile(settings.state_path)
        self._engine: AlertEngine | None = None
        self._warned: set[str] = set()
        self._events: list[AlertEvent] = []

    async def open(self) -> None:
        await self._state.open()

    async def close(self) -> None:
        await self._state.close()

    async def engine(self) -> AlertEngine:
        """The engine, (re)loaded from the persisted state when needed."""
        if self._engine is None:
            s = self.settings
            rows = await self._state.load()
            self._engine = AlertEngine(
                self.pack,
                postures=s.postures,
                default_posture=s.default_posture,
                site_params=s.site_params,
                repeat_critical_s=s.repeat_critical_s,
                state=rows,
                now_ms=time.time_ns() // 1_000_000,
            )
            if rows:
                log.info("alert engine restored: %d active alert(s)", len(self._engine.active()))
        return self._engine

    def invalidate(self) -> None:
        """Forget the in-memory engine: the next use reloads the last committed state."""
        self._engine = None
        self._events = []

    async def step(self, feed: Callable[[AlertEngine], None]) -> list[Sample]:
        """Feed the engine; keep its events for ``deliver`` and return them as store records."""
        engine = await self.engine()
        feed(engine)
        self._events.extend(engine.events())
        return [alert_sample(e) for e in self._events]

    async def deliver(self, mqtt: MqttClient) -> None:
        """Publish the events of the last step, in order, each acknowledged by the broker."""
        events, self._events = self._events, []
        for event in events:
            await self._publish(mqtt, event)

    async def commit(self) -> None:
        engine = await self.engine()
        await self._state.apply(engine.take_changes())

    async def _publish(self, mqtt: MqttClient, event: AlertEvent) -> None:
        try:
            topic = alert_topic(event.site, event.rule, event.device, self.prefix)
        except ContractError as exc:
            self._warn_once(f"topic:{event.site}", "alert not published: %s", exc)
            return
        payload = event.alert.to_json()
        try:
            if event.alert.active:
                await mqtt.publish(topic, payload, qos=1, retain=True)
            else:
                # The cleared event for live subscribers, then remove the retained raise.
                await mqtt.publish(topic, payload, qos=1, retain=False)
                await mqtt.publish(topic, b"", qos=1, retain=True)
        except PublishRefused as exc:
            # An ACL that forbids the alert topics must not stop ingest: count, log, go on.
            self.refused += 1
            self._warn_once(
                "refused",
                "the broker refused an alert on %s (%s); check the collector's ACL "
                "(it needs write on %s/alert/#)",
                topic,
                exc,
                self.prefix,
            )
            return
        self.published += 1
        log.info(
            "alert %s %s/%s/%s: %s",
            "repeated" if event.repeat else ("raised" if event.alert.active else "cleared"),
            event.site,
            event.rule,
            event.device,
            event.alert.message,
        )

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key in self._warned:
            log.debug(msg, *args)
            return
        self._warned.add(key)
        log.warning(msg, *args)
