"""The collector service: MQTT in, time-series store out, nothing acknowledged before it is durable.

The collector subscribes with a fixed client id, a persistent session and QoS 1, and
acknowledges each message by hand only after the batch that holds it is written. If the
collector dies between the write and the acknowledgement, the broker delivers the message
again; both stores treat a second copy of a sample as the same point, so nothing doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from collector.alerts.engine import AlertEngine
from collector.alerts.service import AlertService
from collector.ingest import GatewayStatus, Ingest, IngestStats
from collector.posture import PostureUpdate, apply_posture, posture_filter, read_posture
from collector.settings import CollectorSettings
from collector.spool import Kind, Spool, SpoolError
from shelterwatch.backoff import Backoff
from shelterwatch.errors import ConnectError, StoreError, StoreRejected
from shelterwatch.mqtt_client import Message, MqttClient
from shelterwatch.store import DeviceStatus, Sample, TimeSeriesStore

__all__ = ["Collector"]

log = logging.getLogger(__name__)

T = TypeVar("T", Sample, DeviceStatus)


class Collector:
    def __init__(self, settings: CollectorSettings, store: TimeSeriesStore) -> None:
        self.settings = settings
        self.store = store
        self.ingest = Ingest(
            settings.mqtt.prefix,
            max_future_ms=int(settings.max_future_s * 1000),
            # A shared-group member sees a random part of each gateway's seqs: every skip
            # would look like a loss. Gaps show in the store instead (docs/scaling.md).
            track_gaps=settings.shared_group is None,
            max_payload_bytes=settings.max_payload_bytes,
        )
        self.rejected = 0  # samples the store refused as invalid (counted, logged, acknowledged)
        self.batches = 0
        self.acked = 0  # messages acknowledged to the broker, each one durable first
        self.subscribed = asyncio.Event()
        # The alert engine, when enabled: fed with every batch, its events published on this
        # collector's MQTT connection before the batch is acknowledged (docs/alerts.md).
        self.alerts = (
            AlertService(settings.alerts, settings.mqtt.prefix) if settings.alerts.enabled else None
        )
        # Where batches wait while the store is down (collector/spool.py); None: they wait
        # unacknowledged at the broker instead.
        self.spool: Spool | None = None
        if settings.spool.enabled:
            safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.client_id)
            path = settings.spool.path or Path("data") / f"{safe_id}-spool.db"
            self.spool = Spool(path, settings.spool)
        self._spooled = asyncio.Event()
        self._spool_failing = False

    @property
    def stats(self) -> IngestStats:
        return self.ingest.stats

    async def run(self) -> None:
        if self.spool is None:
            await self._run_with_alerts()
            return
        async with self.spool, asyncio.TaskGroup() as tg:
            if self.spool.depth:
                self._spooled.set()
            tg.create_task(self._drain(), name="spool-drain")
            tg.create_task(self._run_with_alerts(), name="ingest")

    async def _run_with_alerts(self) -> None:
        if self.alerts is None:
            await self._run()
            return
        await self.alerts.open()
        try:
            await self._run()
        finally:
            self.alerts.invalidate()
            await self.alerts.close()

    async def _run(self) -> None:
        s = self.settings
        backoff = Backoff(initial=0.5, maximum=s.mqtt.reconnect_max_s)
        down = False
        while True:
            try:
                async with MqttClient(
                    s.mqtt,
                    s.client_id,
                    persistent=True,
                    manual_ack=True,
                    receive_maximum=s.receive_maximum,
                ) as mqtt:
                    filters = s.topic_filters()
                    if self.alerts is not None:
                        # The posture-gated rules need each site's declared posture.
                        filters.append(posture_filter(s.mqtt.prefix))
                    await mqtt.subscribe(filters, qos=1)
                    log.info(
                        "collector %s subscribed at %s:%s%s%s",
                        s.client_id,
                        s.mqtt.host,
                        s.mqtt.port,
                        f" in shared group {s.shared_group}" if s.shared_group else "",
                        " again" if down else "",
                    )
                    down = False
                    backoff.reset()
                    self.subscribed.set()
                    ticker = (
                        asyncio.create_task(self._tick_loop(mqtt), name="alert-tick")
                        if self.alerts is not None
                        else None
                    )
                    try:
                        while True:
                            batch = await mqtt.receive_batch(s.batch_messages, s.batch_wait_s)
                            await self._store_batch(batch, mqtt)
                            for message in batch:
                                mqtt.ack(message)
                            self.acked += len(batch)
                    finally:
                        if ticker is not None:
                            ticker.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await ticker
            except ConnectError as exc:
                self.subscribed.clear()
                if not down:
                    log.warning(
                        "collector: MQTT link down (%s); unacknowledged messages stay queued at "
                        "the broker and will be delivered again",
                        exc,
                    )
                down = True
                await asyncio.sleep(backoff.next())
            except Exception:
                # A bug must not stop ingest for good. Nothing of the batch was acknowledged,
                # so the broker delivers it again after the reconnect.
                self.subscribed.clear()
                log.exception("collector: unexpected error; reconnecting")
                await asyncio.sleep(backoff.next())

    async def _store_batch(self, batch: Sequence[Message], mqtt: MqttClient | None = None) -> None:
        now = time.time_ns() // 1_000_000
        samples: list[Sample] = []
        statuses: list[DeviceStatus] = []
        records: list[Sample | DeviceStatus | GatewayStatus | PostureUpdate] = []
        for message in batch:
            posture = read_posture(message.topic, message.payload, self.settings.mqtt.prefix)
            if posture is not None:
                records.append(posture)
                continue
            record = self.ingest.convert_any(message.topic, message.payload, now)
            if record is None:
                continue
            records.append(record)
            if isinstance(record, Sample):
                samples.append(record)
            elif isinstance(record, DeviceStatus):
                statuses.append(record)
        if self.alerts is None or mqtt is None:
            await self._write(samples, statuses)
        else:

            def feed(engine: AlertEngine) -> None:
                # In arrival order: an offline state and the data after it mean what they say.
                for rec in records:
                    if isinstance(rec, Sample):
                        engine.on_sample(rec, now)
                    elif isinstance(rec, DeviceStatus):
                        engine.on_status(rec, now)
                    elif isinstance(rec, PostureUpdate):
                        apply_posture(engine, rec, now)
                    else:
                        engine.on_gateway(rec)

            await self._alert_step(mqtt, feed, samples, statuses)
        self.batches += 1

    async def _write(self, samples: list[Sample], statuses: list[DeviceStatus]) -> None:
        if samples:
            await self._durable(self.store.write, samples, "samples")
        if statuses:
            await self._durable(self.store.write_status, statuses, "statuses")

    async def _alert_step(
        self,
        mqtt: MqttClient,
        feed: Callable[[AlertEngine], None],
        samples: list[Sample],
        statuses: list[DeviceStatus],
    ) -> None:
        """Feed the engine, store its events with the batch, publish them, commit its state.

        In that order, all before the caller acknowledges the batch: a failure anywhere
        reloads the engine from its last commit, and the redelivered batch repeats the same
        events (retained messages and stored points are idempotent).
        """
        alerts = self.alerts
        assert alerts is not None
        async with alerts.lock:
            try:
                alert_samples = await alerts.step(feed)
                await self._write(samples + alert_samples, statuses)
                await alerts.deliver(mqtt)
                await alerts.commit()
            except BaseException:
                alerts.invalidate()
                raise

    async def _tick_loop(self, mqtt: MqttClient) -> None:
        alerts = self.alerts
        assert alerts is not None
        while True:
            await asyncio.sleep(alerts.settings.tick_s)
            now = time.time_ns() // 1_000_000
            try:
                await self._alert_step(
                    mqtt, functools.partial(AlertEngine.tick, now_ms=now), [], []
                )
            except ConnectError:
                return  # the receive loop sees the connection drop and reconnects
            except Exception:
                log.exception("alert engine: tick failed; state reloaded from the last commit")

    async def _durable(
        self,
        write: Callable[[Sequence[T]], Awaitable[None]],
        records: Sequence[T],
        kind: Kind,
        *,
        may_spool: bool = True,
    ) -> None:
        """Write until the records are durable: in the store, or in the spool while the store
        is down. Without a spool (or with a spool that cannot be written) a store outage
        holds the batch, and its acknowledgements, back."""
        spool = self.spool if may_spool else None
        # Behind whatever is spooled already, so the store gets batches in arrival order.
        if spool is not None and spool.depth and await self._to_spool(spool, kind, records):
            return
        backoff = Backoff(initial=0.2, maximum=10.0)
        failing = False
        while True:
            try:
                await write(records)
            except StoreRejected as exc:
                await self._isolate(write, records, exc, kind, may_spool=may_spool)
            except StoreError as exc:
                if spool is not None and await self._to_spool(spool, kind, records, exc):
                    return
                if not failing:
                    log.warning(
                        "store write failed (%s); holding %d records and retrying",
                        exc,
                        len(records),
                    )
                failing = True
                await asyncio.sleep(backoff.next())
                continue
            if failing:
                log.info("store writes work again")
            return

    async def _isolate(
        self,
        write: Callable[[Sequence[T]], Awaitable[None]],
        records: Sequence[T],
        exc: StoreRejected,
        kind: Kind,
        *,
        may_spool: bool,
    ) -> None:
        # The store refused something in the batch: find it by halving, keep the rest.
        if len(records) == 1:
            self.rejected += 1
            log.warning("store refused a record, which is dropped: %s (%r)", exc, records[0])
            return
        mid = len(records) // 2
        for part in (records[:mid], records[mid:]):
            await self._durable(write, part, kind, may_spool=may_spool)

    async def _to_spool(
        self,
        spool: Spool,
        kind: Kind,
        records: Sequence[T],
        cause: StoreError | None = None,
    ) -> bool:
        """Spool a batch; False when the spool cannot take it (the caller holds it instead)."""
        first = spool.depth == 0
        try:
            await spool.append(kind, records)
        except SpoolError as exc:
            if not self._spool_failing:
                log.error(
                    "%s; holding the batch unacknowledged at the broker instead. Free disk "
                    "space for the spool or set spool.path to a writable disk",
                    exc,
                )
            self._spool_failing = True
            return False
        if self._spool_failing:
            log.info("spool %s writable again", spool.path)
            self._spool_failing = False
        if first and cause is not None:
            log.warning(
                "store write failed (%s); spooling batches to %s and acknowledging them, "
                "they go to the store in order when it answers again",
                cause,
                spool.path,
            )
        self._spooled.set()
        return True

    async def _drain(self) -> None:
        """Move spooled batches into the store, oldest first, each retried until it is in."""
        spool = self.spool
        assert spool is not None
        backoff = Backoff(initial=0.5, maximum=10.0)
        while True:
            await self._spooled.wait()
            try:
                await self._drain_one(spool)
                backoff.reset()
            except Exception:
                # A spool that cannot be read must not stop ingest; what it holds stays.
                log.exception("spool %s: draining failed; trying again", spool.path)
                await asyncio.sleep(backoff.next())

    async def _drain_one(self, spool: Spool) -> None:
        batch = await spool.oldest()
        if batch is None:
            self._spooled.clear()
            if spool.drained:
                log.info(
                    "spool drained: %d records written to the store in arrival order "
                    "since start; %d dropped (spool full) in total",
                    spool.drained,
                    spool.dropped,
                )
            return
        if batch.samples:
            await self._durable(self.store.write, batch.samples, "samples", may_spool=False)
        if batch.statuses:
            await self._durable(
                self.store.write_status, batch.statuses, "statuses", may_spool=False
            )
        await spool.remove(batch)
