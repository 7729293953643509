"""The siren runner's pure parts: the signal timer, outcome summaries and the ledger."""

from __future__ import annotations

import sqlite3

from gateway.sirens.ledger import ActivationLedger, create_tables
from gateway.sirens.outcomes import summarize
from gateway.sirens.timer import sound_intervals
from shelterwatch.contract import CommandState, SignalSegment, SignalSpec, SirenOutcome
from shelterwatch.signals import builtin_signals

Out = SirenOutcome


def test_the_timer_follows_the_segments_and_merges_continuous_sound() -> None:
    disaster = builtin_signals()["disaster"].spec()
    assert sound_intervals(disaster)[:3] == [(0.0, 15.0), (25.0, 30.0), (40.0, 55.0)]
    assert sound_intervals(disaster)[-1][1] == disaster.duration_s
    air_raid = sound_intervals(builtin_signals()["air_raid"].spec())
    assert len(air_raid) == 15 and air_raid[-1] == (168.0, 174.0)
    joined = SignalSpec(
        name="x", segments=[SignalSegment(on_s=1, off_s=0), SignalSegment(on_s=2, off_s=1)]
    )
    assert sound_intervals(joined) == [(0.0, 3.0)]
    assert sound_intervals(builtin_signals()["all_clear"].spec()) == [(0.0, 180.0)]


def test_summaries_count_outcomes_bad_first() -> None:
    outcomes = {"a": Out.TEST_PASSED, "b": Out.TEST_FAILED, "c": Out.TEST_PASSED}
    assert summarize(outcomes) == (
        CommandState.FAILED,
        "1 of 3 sirens: test_failed (b); 2 test_passed",
    )
    assert summarize({"a": Out.SOUNDED, "b": Out.SOUNDED}) == (
        CommandState.SUCCEEDED,
        "2 of 2 sirens: sounded",
    )
    state, detail = summarize({"a": Out.CANCELLED, "b": Out.SOUNDED}, "cancel-1")
    assert state is CommandState.CANCELLED
    assert detail == "cancelled by cancel-1; 1 of 2 sirens: cancelled (a); 1 sounded"
    state, _ = summarize({"a": Out.CANCELLED, "b": Out.UNREACHABLE})
    assert state is CommandState.FAILED


def test_the_ledger_claims_once_and_survives_a_restart() -> None:
    db = sqlite3.connect(":memory:")
    create_tables(db)
    ledger = ActivationLedger()
    assert ledger.claim("act-1", "s1", "cmd-1") is None
    earlier = ledger.claim("act-1", "s1", "cmd-2")
    assert earlier is not None and earlier.command_id == "cmd-1"
    assert ledger.claim("act-1", "s2", "cmd-2") is None  # another siren is another run
    ledger.finish("act-1", "s1", Out.SOUNDED, "played")
    ActivationLedger.save_run(db, ledger.runs[("act-1", "s1")])
    ActivationLedger.save_run(db, ledger.runs[("act-1", "s2")])
    ledger.cancel("act-2", "cancel-9")
    ActivationLedger.save_cancel(db, "act-2", "cancel-9")

    again = ActivationLedger()
    again.load(db)
    first = again.claim("act-1", "s1", "cmd-3")
    assert first is not None and first.outcome is Out.SOUNDED
    cut = again.claim("act-1", "s2", "cmd-3")
    assert cut is not None and cut.outcome is None  # it was running when the gateway stopped
    assert again.cancelled_by("act-2") == "cancel-9"
