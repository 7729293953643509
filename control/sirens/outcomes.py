"""What became of each siren of an activation, from the gateway's per-siren answers.
Pure logic, no IO.

A target moves forward only: ``pending < sent < started < final``. A final outcome stays
final, with one exception: ``no_answer`` is the control service's own verdict (nothing heard
by the command's expiry plus the grace), so a real outcome that arrives later replaces it.
A gateway finishes a signal even when its uplink drops and reports when it is back; that
report is a fact, the verdict was a guess. The same answer twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum

from control.sirens.activations import ActivationState
from shelterwatch.contract import CommandAck, CommandState, SirenKind, SirenOutcome

__all__ = [
    "FINAL_TARGET",
    "GOOD",
    "TargetState",
    "activation_end",
    "counts",
    "describe_end",
    "outcome_of",
    "target_after",
]


class TargetState(StrEnum):
    PENDING = "pending"  # recorded; its command not yet taken by the broker
    SENT = "sent"  # the broker took the command
    STARTED = "started"  # the controller confirms the sound (or the test) began
    SOUNDED = "sounded"
    TEST_PASSED = "test_passed"
    TEST_FAILED = "test_failed"
    UNREACHABLE = "unreachable"
    CANCELLED = "cancelled"
    FAILED = "failed"
    NO_ANSWER = "no_answer"  # nothing final from the gateway by the command's expiry + grace


FINAL_TARGET = frozenset(
    {
        TargetState.SOUNDED,
        TargetState.TEST_PASSED,
        TargetState.TEST_FAILED,
        TargetState.UNREACHABLE,
        TargetState.CANCELLED,
        TargetState.FAILED,
        TargetState.NO_ANSWER,
    }
)
GOOD = frozenset({TargetState.SOUNDED, TargetState.TEST_PASSED})
_RANK = {TargetState.PENDING: 0, TargetState.SENT: 1, TargetState.STARTED: 2}


def _rank(state: TargetState) -> int:
    return _RANK.get(state, 3)


def target_after(current: TargetState, new: TargetState) -> TargetState | None:
    """The target's state after an answer saying ``new``, or None if it keeps its state."""
    if new == current:
        return None
    if current is TargetState.NO_ANSWER:
        return new if new in FINAL_TARGET else None
    if current in FINAL_TARGET:
        return None
    return new if _rank(new) > _rank(current) else None


_BY_OUTCOME = {
    SirenOutcome.STARTED: TargetState.STARTED,
    SirenOutcome.SOUNDED: TargetState.SOUNDED,
    SirenOutcome.TEST_PASSED: TargetState.TEST_PASSED,
    SirenOutcome.TEST_FAILED: TargetState.TEST_FAILED,
    SirenOutcome.UNREACHABLE: TargetState.UNREACHABLE,
    SirenOutcome.CANCELLED: TargetState.CANCELLED,
    SirenOutcome.FAILED: TargetState.FAILED,
}


def outcome_of(ack: CommandAck, kind: SirenKind) -> TargetState | None:
    """What a per-siren answer says about its siren. Gateways send ``outcome``; an answer
    without one is read from its state, so a terse gateway still moves its sirens."""
    if ack.outcome is not None:
        return _BY_OUTCOME[ack.outcome]
    match ack.state:
        case CommandState.RUNNING:
            return TargetState.STARTED
        case CommandState.SUCCEEDED:
            silent = kind is SirenKind.SILENT_TEST
            return TargetState.TEST_PASSED if silent else TargetState.SOUNDED
        case CommandState.CANCELLED:
            return TargetState.CANCELLED
        case CommandState.FAILED | CommandState.REJECTED | CommandState.EXPIRED:
            return TargetState.FAILED
    return None


def activation_end(states: Iterable[TargetState], *, cancelled: bool) -> ActivationState | None:
    """The activation's final state once every target is final; None before."""
    states = list(states)
    if any(s not in FINAL_TARGET for s in states):
        return None
    if cancelled:
        return ActivationState.CANCELLED
    if all(s in GOOD for s in states):
        return ActivationState.COMPLETED
    return ActivationState.COMPLETED_WITH_FAILURES


def counts(states: Iterable[str]) -> dict[str, int]:
    tally = Counter(states)
    return {state: tally[state] for state in sorted(tally)}


def describe_end(states: Iterable[TargetState]) -> str:
    """ "12 of 12 sirens good" or "10 of 12 sirens good; not good: no_answer 1, test_failed 1"."""
    states = list(states)
    good = sum(1 for s in states if s in GOOD)
    text = f"{good} of {len(states)} sirens good"
    bad = counts(s.value for s in states if s not in GOOD)
    if bad:
        text += "; not good: " + ", ".join(f"{k} {v}" for k, v in bad.items())
    return text
