"""The collector service: MQTT in, time-series store out, nothing acknowledged before it is durable.

The collector subscribes with a fixed client id, a persistent session and QoS 1, and
acknowledges each message by hand only after the batch that holds it is written. If the
collector dies between the write and the acknowledgement, the broker delivers the message
again; both stores treat a second copy of a sample as the same point, so nothing doubles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from collector.ingest import Ingest, IngestStats
from collector.settings import CollectorSettings
from shelterwatch.backoff import Backoff
from shelterwatch.contract import subscriptions
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
        self.ingest = Ingest(settings.mqtt.prefix, max_future_ms=int(settings.max_future_s * 1000))
        self.rejected = 0  # samples the store refused as invalid (counted, logged, acknowledged)
        self.batches = 0
        self.acked = 0  # messages acknowledged to the broker, each one durable first
        self.subscribed = asyncio.Event()

    @property
    def stats(self) -> IngestStats:
        return self.ingest.stats

    async def run(self) -> None:
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
                    await mqtt.subscribe(subscriptions(s.mqtt.prefix), qos=1)
                    log.info(
                        "collector %s subscribed at %s:%s%s",
                        s.client_id,
                        s.mqtt.host,
                        s.mqtt.port,
                        " again" if down else "",
                    )
                    down = False
                    backoff.reset()
                    self.subscribed.set()
                    while True:
                        batch = await mqtt.receive_batch(s.batch_messages, s.batch_wait_s)
                        await self._store_batch(batch)
                        for message in batch:
                            mqtt.ack(message)
                        self.acked += len(batch)
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

    async def _store_batch(self, batch: Sequence[Message]) -> None:
        now = time.time_ns() // 1_000_000
        samples: list[Sample] = []
        statuses: list[DeviceStatus] = []
        for message in batch:
            record = self.ingest.convert(message.topic, message.payload, now)
            if isinstance(record, Sample):
                samples.append(record)
            elif isinstance(record, DeviceStatus):
                statuses.append(record)
        if samples:
            await self._durable(self.store.write, samples)
        if statuses:
            await self._durable(self.store.write_status, statuses)
        self.batches += 1

    async def _durable(
        self, write: Callable[[Sequence[T]], Awaitable[None]], records: Sequence[T]
    ) -> None:
        """Write until it succeeds. A store outage holds the batch (and its acks) back."""
        backoff = Backoff(initial=0.2, maximum=10.0)
        failing = False
        while True:
            try:
                await write(records)
            except StoreRejected as exc:
                await self._isolate(write, records, exc)
            except StoreError as exc:
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
    ) -> None:
        # The store refused something in the batch: find it by halving, keep the rest.
        if len(records) == 1:
            self.rejected += 1
            log.warning("store refused a record, which is dropped: %s (%r)", exc, records[0])
            return
        mid = len(records) // 2
        for part in (records[:mid], records[mid:]):
            await self._durable(write, part)
