"""The disk under the gateway's outbox fills up: a clear error, counted drops, no corruption,
and the gateway goes on polling and publishing live data.

The outbox lives on a 256 KiB tmpfs mounted for the test (root only; elsewhere the test is
skipped and says why). The broker is stopped so the outbox fills the disk, then started again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

import gateway.outbox
from firmware_sim import Fleet, FleetSpec
from gateway.outbox import Outbox, OutboxSettings
from shelterwatch.store.sqlite import SqliteStore


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root; run the suite as root to prove this")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


async def test_a_full_disk_under_the_outbox_is_loud_counted_and_harmless(
    tiny_disk: Path,
    broker: MosquittoServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small memory reserve, so the test sees it overflow within seconds.
    monkeypatch.setattr(gateway.outbox, "_MEMORY_MAX", 300)
    outbox_path = tiny_disk / "outbox.db"
    mqtt = mqtt_settings(broker.port)
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.05)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        (gw,) = gateways_for(
            fleet,
            mqtt,
            interval_s=0.02,
            outbox_dir=tmp_path,
            snapshot_interval_s=0.001,
            outbox={"path": str(outbox_path)},
        )
        collector = collector_for(store, mqtt, client_id=f"full-{uuid.uuid4().hex[:6]}")
        async with running(collector.run(), gw.run()):
            await wait_until(lambda: collector.stats.samples > 50, 20, "data flowing")
            broker.stop()
            with caplog.at_level(logging.ERROR, logger="gateway.outbox"):
                await wait_until(lambda: gw.outbox.write_errors > 0, 60, "the disk full")
                await wait_until(lambda: gw.outbox.dropped > 0, 30, "the memory reserve full")
            polls = sum(p.polls for p in gw.pollers)
            await wait_until(
                lambda: sum(p.polls for p in gw.pollers) > polls + 100, 10, "polling goes on"
            )
            broker.start()
            # Live data flows again, although the disk still refuses every write.
            published = gw.stats.published
            await wait_until(lambda: gw.stats.published > published + 200, 30, "live data")
            errors = gw.outbox.write_errors
            await wait_until(lambda: gw.outbox.write_errors > errors, 10, "disk still full")
            assert gw.connected.is_set()
            # The collector reconnects on its own backoff, after the gateway; the messages
            # dropped from the full reserve show there as a gap in seq.
            await wait_until(lambda: collector.stats.missing > 0, 30, "the gap seen by seq")
    # One clear error for the whole episode, naming the file and what to do.
    errors_logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors_logged) == 1, [r.getMessage() for r in errors_logged]
    message = errors_logged[0].getMessage()
    assert str(outbox_path) in message and "disk full" in message and "Free space" in message
    # The loss is counted where an operator sees it, and the collector sees it by seq.
    assert gw.outbox.dropped > 0
    assert collector.stats.missing > 0
    # No corruption: the file checks out and opens again, its seq counter intact.
    with contextlib.closing(sqlite3.connect(outbox_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    async with Outbox(outbox_path, OutboxSettings(path=outbox_path)) as reopened:
        assert 0 < reopened.next_seq <= gw.outbox.next_seq
