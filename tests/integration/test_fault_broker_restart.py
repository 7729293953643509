"""The broker restarted while a gateway publishes 250 messages/s and the collector consumes them.

tests/integration/test_telemetry_path.py already restarts the broker at a gentle rate and
checks that no seq gap is left; this one loads the path and checks the store row by row:
every reading the gateway produced is stored exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_ledger import Ledger, compare, store_rows
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from gateway import Gateway
from shelterwatch.store.sqlite import SqliteStore


def record_outbox(gw: Gateway, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Note every message the gateway puts into its outbox, as it is built."""
    append = gw.outbox.append
    prefix = gw.settings.mqtt.prefix

    async def recording(topic: str, build: Callable[[int], bytes], now_ms: int) -> int:
        def noted(seq: int) -> bytes:
            payload = build(seq)
            ledger.record(topic, payload, prefix)
            return payload

        return await append(topic, noted, now_ms)

    monkeypatch.setattr(gw.outbox, "append", recording)


@pytest.fixture
def broker(tmp_path: Path) -> MosquittoServer:
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


async def test_broker_restart_under_load_stores_every_seq_once(
    broker: MosquittoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mqtt = mqtt_settings(broker.port)
    ledger = Ledger()
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.05)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        # Every poll is a full snapshot: 5 devices x 50 polls/s, each message with values.
        (gw,) = gateways_for(
            fleet, mqtt, interval_s=0.02, outbox_dir=tmp_path, snapshot_interval_s=0.001
        )
        record_outbox(gw, ledger, monkeypatch)
        collector = collector_for(store, mqtt, client_id=f"brk-{uuid.uuid4().hex[:6]}")
        async with running(collector.run(), gw.run()):
            await wait_until(lambda: collector.stats.samples > 500, 30, "data flowing")
            broker.restart()
            await wait_until(lambda: gw.stats.connects >= 2, 20, "gateway reconnected")
            after = collector.stats.samples + 300
            await wait_until(lambda: collector.stats.samples > after, 30, "load after restart")
            # Stop producing, then let everything queued reach the store.
            for poller in gw.pollers:
                poller._interval = 3600.0
            await wait_until(lambda: gw.outbox.depth == 0, 30, "the outbox drained")
            expected = ledger.expected_rows()
            await wait_until(
                lambda: not compare(expected, store_rows(tmp_path / "store.db"))["lost"],
                30,
                "every reading stored",
            )
    assert gw.outbox.dropped == 0
    assert ledger.seqs("gw-shelter-01") == list(range(gw.outbox.next_seq))
    assert compare(expected, store_rows(tmp_path / "store.db")) == {"lost": {}, "duplicated": {}}
    assert collector.stats.missing == 0
    assert len(expected) > 600
