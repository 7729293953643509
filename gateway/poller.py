"""One device's poll loop: read its blocks, decode its points, report what changed.

The next poll is scheduled after the current one finishes, so polls never overlap. A device
that stops answering is reported offline once, with every point's quality bad, and is polled
on; the hub reconnects with backoff. Nothing a device does can stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.hub import ModbusHub
from gateway.planner import ReadBlock, plan_reads
from gateway.report import ReportFilter
from gateway.settings import DeviceConfig
from shelterwatch import codec
from shelterwatch.contract import Quality, Value
from shelterwatch.errors import CodecError, TransportError
from shelterwatch.profiles import Point, Profile

__all__ = ["DeviceEvent", "DevicePoller", "now_ms"]

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """What a poll produced: data to publish, and/or a change of the device's online state."""

    device: str
    ts: int
    values: dict[str, Value]
    quality: dict[str, Quality]
    full: bool
    online: bool
    online_changed: bool
    error: str | None = None


class DevicePoller:
    def __init__(
        self,
        config: DeviceConfig,
        profile: Profile,
        hub: ModbusHub,
        emit: Callable[[DeviceEvent], Awaitable[None]],
        *,
        snapshot_interval_s: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._now_ms = clock
        self.config = config
        self.profile = profile
        self._hub = hub
        self._emit = emit
        self._interval = config.interval_s or profile.interval_s
        self._snapshot_interval = snapshot_interval_s
        self._blocks: list[ReadBlock] = plan_reads(
            profile.points, max_registers=config.max_registers, gap_fill=config.gap_fill
        )
        # Decoding settled once per point, not on every poll (the hot path).
        self._readers: list[list[tuple[str, int, codec.Reader]]] = [
            [(p.name, off, codec.compile_reader(p)) for p, off in block.points]
            for block in self._blocks
        ]
        self._filter = ReportFilter({p.name: p.deadband for p in profile.points})
        self._online: bool | None = None
        self._last_full = -float("inf")
        self.polls = 0
        self.failures = 0
        self.latency_ms = 0.0  # duration of the last successful poll
        self._silent_polls = 0  # failed polls in a row

    @property
    def requests_per_poll(self) -> int:
        return len(self._blocks)

    @property
    def online(self) -> bool | None:
        return self._online

    def request_snapshot(self) -> None:
        """Make the next good poll publish every point (after an uplink reconnect)."""
        self._last_full = -float("inf")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.poll_once()
                # On Python 3.11 pymodbus' wait_for can swallow a cancel that lands together
                # with the answer; honour it here, or the gateway would never stop.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
            except Exception:
                # A bug must not end this device's polling, let alone the gateway: log it with
                # its traceback, count it, and poll again at the next interval.
                self.failures += 1
                log.exception("device %s: unexpected error while polling", self.config.id)
            await asyncio.sleep(max(0.0, started + self._next_interval() - loop.time()))

    def _next_interval(self) -> float:
        # A silent device is polled less and less often (up to 10 intervals, at most 30 s):
        # on a serial bus each timeout holds the bus that the other devices need.
        if self._online is not False or self._silent_polls < 2:
            return self._interval
        backoff: float = self._interval * 2.0 ** min(self._silent_polls - 1, 10)
        return max(self._interval, min(backoff, 10 * self._interval, 30.0))

    async def poll_once(self) -> None:
        self.polls += 1
        ts = self._now_ms()
        started = time.perf_counter()
        try:
            values, quality = await self._read_all()
        except TransportError as exc:
            self.failures += 1
            self._silent_polls += 1
            await self._went_offline(ts, str(exc))
            return
        self._silent_polls = 0
        self.latency_ms = (time.perf_counter() - started) * 1000
        came_back = self._online is not True
        if came_back and self._online is False:
            log.info("device %s (%s) answers again", self.config.id, self._hub.name)
        self._online = True
        full = came_back or time.monotonic() - self._last_full >= self._snapshot_interval
        if full:
            self._last_full = time.monotonic()
            self._filter.snapshot(values, quality)
            await self._emit(
                DeviceEvent(self.config.id, ts, values, quality, True, True, came_back)
            )
            return
        changed, bad = self._filter.changes(values, quality)
        if changed or bad:
            await self._emit(DeviceEvent(self.config.id, ts, changed, bad, False, True, False))

    async def _read_all(self) -> tuple[dict[str, Value], dict[str, Quality]]:
        values: dict[str, Value] = {}
        quality: dict[str, Quality] = {}
        for block, readers in zip(self._blocks, self._readers, strict=True):
            raw = await self._hub.read(
                block.table,
                self.config.wire_address(block.address),
                block.count,
                self.config.unit_id,
            )
            for name, offset, read in readers:
                try:
                    values[name] = read(raw, offset)
                except CodecError as exc:
                    quality[name] = Quality.BAD
                    log.debug("device %s point %s: %s", self.config.id, name, exc)
        return values, quality

    async def _went_offline(self, ts: int, error: str) -> None:
        if self._online is False:
            log.debug("device %s still not answering: %s", self.config.id, error)
            return
        log.warning(
            "device %s (%s) stopped answering: %s; its points are marked bad and polling goes on",
            self.config.id,
            self._hub.name,
            error,
        )
        self._online = False
        bad = {p.name: Quality.BAD for p in self.profile.points}
        self._filter.snapshot({}, bad)
        await self._emit(DeviceEvent(self.config.id, ts, {}, bad, False, False, True, error))


def _decode(point: Point, raw: list[int] | list[bool], offset: int) -> Value:
    """One point of a block read; CodecError (quality bad) for words that are no reading:
    NaN, one of the point's sentinel values, or a value outside its valid_range."""
    return codec.compile_reader(point)(raw, offset)
