"""The gateway's clock jumps: timestamps stay monotonic, follow the clock when they can, and a
clock far in the future is refused and counted by the collector (gateway/clock.py)."""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import pytest
from fault_ledger import Ledger, compare, store_rows
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until
from test_fault_broker_restart import record_outbox

from firmware_sim import Fleet, FleetSpec
from gateway import Gateway, GatewaySettings
from gateway.clock import GatewayClock
from shelterwatch.store.sqlite import SqliteStore

HOUR_NS = 3600 * 10**9


class SteppableWall:
    """The system clock, plus an offset a test can step."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns


class FakeTime:
    def __init__(self) -> None:
        self.wall = 1_700_000_000_000 * 10**6
        self.mono = 0

    def advance(self, ms: int) -> None:
        self.wall += ms * 10**6
        self.mono += ms * 10**6


def test_steps_back_are_slewed_and_steps_forward_followed() -> None:
    t = FakeTime()
    clock = GatewayClock(lambda: t.wall, lambda: t.mono, slew_rate=0.5)
    start = clock.now_ms()
    t.advance(1000)
    assert clock.now_ms() == start + 1000
    t.wall -= 60 * 10**9  # the system clock is set back a minute
    seen = []
    for _ in range(10):
        t.advance(100)
        seen.append(clock.now_ms())
    assert all(b > a for a, b in itertools.pairwise(seen))
    assert seen[-1] - seen[0] == 450  # half speed: 900 ms of real time, 450 ms of ours
    assert clock.stats.steps_back == 1 and clock.stats.ahead_ms > 59_000
    # It catches up with the system clock and follows it again.
    t.advance(2 * 60 * 1000 + 5000)
    caught = clock.now_ms()
    assert caught == t.wall // 10**6 and clock.stats.ahead_ms == 0
    t.wall += 2 * HOUR_NS  # forward: followed at once
    t.advance(10)
    assert clock.now_ms() == t.wall // 10**6
    assert clock.stats.steps_forward == 1
    # Same millisecond twice: still strictly increasing.
    assert clock.now_ms() < clock.now_ms()
    # A step back too large to slew (the clock was badly ahead) is followed: honest time.
    t.wall -= 2 * HOUR_NS
    t.advance(10)
    assert clock.now_ms() == t.wall // 10**6 + 1
    assert clock.stats.steps_back == 2 and clock.stats.ahead_ms <= 1


def test_small_wobble_is_not_a_step() -> None:
    t = FakeTime()
    clock = GatewayClock(lambda: t.wall, lambda: t.mono)
    clock.now_ms()
    t.wall -= 300 * 10**6  # an NTP correction within tolerance
    t.advance(10)
    clock.now_ms()
    assert clock.stats.steps_back == clock.stats.steps_forward == 0


async def test_clock_jumps_keep_every_reading_in_order_and_stored(
    mosquitto: MosquittoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    wall = SteppableWall()
    ledger = Ledger()
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.05)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        (proto,) = gateways_for(
            fleet, mqtt, interval_s=0.05, outbox_dir=tmp_path, snapshot_interval_s=0.001
        )
        gw = Gateway(
            GatewaySettings.model_validate(proto.settings.model_dump()), clock=GatewayClock(wall)
        )
        record_outbox(gw, ledger, monkeypatch)
        collector = collector_for(store, mqtt, client_id=f"clk-{uuid.uuid4().hex[:6]}")
        async with running(collector.run(), gw.run()):

            async def more(n: int) -> None:
                target = collector.stats.samples + n
                await wait_until(lambda: collector.stats.samples >= target, 20, f"{n} more")

            await more(100)
            wall.offset_ns = -120 * 10**9  # set back two minutes: slewed
            await wait_until(lambda: gw.clock.stats.steps_back == 1, 10, "the step back seen")
            await more(100)
            assert gw.clock.stats.ahead_ms > 60_000
            wall.offset_ns = HOUR_NS  # an hour ahead: followed
            await more(100)
            wall.offset_ns = 3 * 24 * HOUR_NS  # three days ahead: too far to be true
            await wait_until(lambda: collector.stats.out_of_range > 50, 20, "future refused")
            wall.offset_ns = 0  # corrected: too far to slew, followed back
            await wait_until(lambda: gw.clock.stats.steps_back == 2, 10, "the correction seen")
            await more(100)
            for poller in gw.pollers:
                poller._interval = 3600.0
            await wait_until(lambda: gw.outbox.depth == 0, 20, "outbox drained")
    assert gw.clock.stats.steps_forward == 2
    # Per device, in seq order, every timestamp is later than the one before, except across
    # the one correction too large to slew.
    by_device: dict[str, list[int]] = {}
    for (_gw, _seq), (device, ts, _n) in sorted(ledger.messages.items()):
        by_device.setdefault(device, []).append(ts)
    for device, stamps in by_device.items():
        back = [(a, b) for a, b in itertools.pairwise(stamps) if b <= a]
        assert len(back) <= 1, (device, back[:3])
        assert all(a - b > 2 * 24 * 3600 * 1000 for a, b in back), (device, back)
    # Nothing overwritten and nothing doubled; only the far-future readings are missing, and
    # the collector counted each of them.
    limit = (time.time_ns() + 24 * HOUR_NS) // 10**6
    expected = {k: n for k, n in ledger.expected_rows().items() if k[2] <= limit}
    refused = len(ledger.expected_rows()) - len(expected)
    assert refused > 50 and collector.stats.out_of_range >= refused
    assert compare(expected, store_rows(tmp_path / "store.db")) == {"lost": {}, "duplicated": {}}
