"""The alert engine's persisted state: one SQLite file, key → JSON, written once per batch.

The collector commits the engine's changes after a batch's alert events are published and
before the batch's messages are acknowledged. A crash before the commit makes the broker
deliver the batch again, and the engine (reloaded from the last commit) produces the same
events again; the retained alert messages and the stored events are idempotent, so nothing is
raised twice and nothing is forgotten.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from shelterwatch.errors import StoreError

__all__ = ["AlertStateFile"]

T = TypeVar("T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS alert_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class AlertStateFile:
    """Key/value rows in SQLite (WAL, synchronous=FULL), on one worker thread like the store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError(f"alert state {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-state")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the alert state file {self.path}: {exc}; check alerts.state_path"
            ) from exc
        self._conn = conn

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def load(self) -> dict[str, str]:
        def run() -> dict[str, str]:
            assert self._conn is not None
            return dict(self._conn.execute("SELECT key, value FROM alert_state").fetchall())

        return await self._run(run)

    async def apply(self, changes: Sequence[tuple[str, str | None]]) -> None:
        """Write the changes in one transaction; a None value deletes the key."""
        if not changes:
            return
        upserts = [(k, v) for k, v in changes if v is not None]
        deletes = [(k,) for k, v in changes if v is None]

        def run() -> None:
            conn = self._conn
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT INTO alert_state (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        upserts,
                    )
                    conn.executemany("DELETE FROM alert_state WHERE key = ?", deletes)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"alert state {self.path}: write failed: {exc}") from exc

        await self._run(run)
