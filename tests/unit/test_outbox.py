"""The gateway outbox on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.outbox import Outbox, OutboxSettings

T = 1_700_000_000_000


def _payload(seq: int) -> bytes:
    return b'{"seq": %d, "padding": "%s"}' % (seq, b"x" * 100)


async def test_append_fetch_remove_and_seq_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with Outbox(path, OutboxSettings()) as box:
        seqs = [await box.append("t", _payload, T + i) for i in range(10)]
        assert seqs == list(range(10))
        rows = await box.fetch(-1, 4)
        assert [r.seq for r in rows] == [0, 1, 2, 3]
        assert rows[2].payload == _payload(2) and rows[2].created_ms == T + 2
        assert [r.seq for r in await box.fetch(3, 100, before_seq=6)] == [4, 5]
        await box.remove([0, 1, 2])
        assert box.depth == 7
    # A restart (or a power cut after the commit) keeps the rest, and seq keeps counting.
    async with Outbox(path, OutboxSettings()) as box:
        assert box.depth == 7
        assert [r.seq for r in await box.fetch(-1, 100)] == list(range(3, 10))
        assert await box.append("t", _payload, T) == 10
        await box.remove(list(range(11)))
        assert box.depth == 0 and box.bytes == 0
    async with Outbox(path, OutboxSettings()) as box:
        # Even with nothing left in it, seq does not go back.
        assert await box.append("t", _payload, T) == 11


async def test_full_outbox_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with Outbox(path, OutboxSettings(max_messages=100)) as box:
        for i in range(130):
            await box.append("t", _payload, T + i)
        assert box.depth == 100
        assert box.dropped == 30
        rows = await box.fetch(-1, 1000)
        assert rows[0].seq == 30 and rows[-1].seq == 129
        stats = await box.stats()
        assert (stats.depth, stats.dropped, stats.oldest_ms) == (100, 30, T + 30)
    async with Outbox(path, OutboxSettings(max_messages=100)) as box:
        assert box.dropped == 30  # the count survives a restart


async def test_byte_bound_and_age_bound(tmp_path: Path) -> None:
    settings = OutboxSettings(max_bytes=1_000_000, max_age_s=60)
    big = b"y" * 100_000
    async with Outbox(tmp_path / "o.db", settings) as box:
        for i in range(15):
            await box.append("t", lambda _seq: big, T + i * 1000)
        assert box.bytes <= 1_000_000
        assert box.dropped >= 5
        kept = await box.fetch(-1, 100)
        assert kept[-1].seq == 14  # the newest is always kept
        # Age: everything created more than 60 s before "now" goes.
        n = await box.expire(now_ms=T + 70_000)
        assert n == len([r for r in kept if r.created_ms < T + 10_000])
        assert box.dropped >= 5 + n


async def test_outbox_file_is_plain_sqlite_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with Outbox(path, OutboxSettings()) as box:
        await box.append("t", _payload, T)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
