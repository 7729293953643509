"""Which activation ran on which siren, and which activations were cancelled.

The contract's promise "an activation sounds a siren at most once, however many commands
carry it" is kept here: a (activation, siren) pair is claimed synchronously before anything
is written, so two commands arriving back to back cannot both pass. A cancel that overtakes
its activation is remembered, so the late activation does not sound. Entries are written
through to the replay cache's SQLite file (``gateway.commands``), so the promise survives a
restart; they are kept for a day.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from shelterwatch.contract import SirenOutcome

__all__ = ["ActivationLedger", "LedgerEntry", "create_tables"]

KEEP_MS = 86_400_000


@dataclass(slots=True)
class LedgerEntry:
    activation: str
    siren: str
    command_id: str
    outcome: SirenOutcome | None = None  # None while it runs (or if a restart cut it short)
    detail: str = ""


def create_tables(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS siren_runs (activation TEXT NOT NULL, siren TEXT NOT NULL, "
        "command_id TEXT NOT NULL, outcome TEXT, detail TEXT NOT NULL DEFAULT '', "
        "ts_ms INTEGER NOT NULL, PRIMARY KEY (activation, siren))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS siren_cancels (activation TEXT PRIMARY KEY, "
        "command_id TEXT NOT NULL, ts_ms INTEGER NOT NULL)"
    )


class ActivationLedger:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], LedgerEntry] = {}
        self.cancels: dict[str, str] = {}  # activation -> the cancel command's id

    def claim(self, activation: str, siren: str, command_id: str) -> LedgerEntry | None:
        """Record a new run; return the earlier entry instead if there is one."""
        key = (activation, siren)
        earlier = self.runs.get(key)
        if earlier is None:
            self.runs[key] = LedgerEntry(activation, siren, command_id)
        return earlier

    def finish(self, activation: str, siren: str, outcome: SirenOutcome, detail: str) -> None:
        entry = self.runs.get((activation, siren))
        if entry is not None:
            entry.outcome, entry.detail = outcome, detail

    def cancel(self, activation: str, command_id: str) -> None:
        self.cancels.setdefault(activation, command_id)

    def cancelled_by(self, activation: str) -> str | None:
        return self.cancels.get(activation)

    # -- persistence (called in the command runner's database thread) ------------------------

    def load(self, db: sqlite3.Connection) -> None:
        cutoff = time.time_ns() // 1_000_000 - KEEP_MS
        db.execute("DELETE FROM siren_runs WHERE ts_ms < ?", (cutoff,))
        db.execute("DELETE FROM siren_cancels WHERE ts_ms < ?", (cutoff,))
        for activation, siren, command_id, outcome, detail in db.execute(
            "SELECT activation, siren, command_id, outcome, detail FROM siren_runs"
        ):
            self.runs[(activation, siren)] = LedgerEntry(
                activation, siren, command_id, SirenOutcome(outcome) if outcome else None, detail
            )
        for activation, command_id in db.execute(
            "SELECT activation, command_id FROM siren_cancels"
        ):
            self.cancels[activation] = command_id

    @staticmethod
    def save_run(db: sqlite3.Connection, entry: LedgerEntry) -> None:
        db.execute(
            "INSERT OR REPLACE INTO siren_runs VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.activation,
                entry.siren,
                entry.command_id,
                entry.outcome.value if entry.outcome else None,
                entry.detail,
                time.time_ns() // 1_000_000,
            ),
        )

    @staticmethod
    def save_cancel(db: sqlite3.Connection, activation: str, command_id: str) -> None:
        db.execute(
            "INSERT OR IGNORE INTO siren_cancels VALUES (?, ?, ?)",
            (activation, command_id, time.time_ns() // 1_000_000),
        )
