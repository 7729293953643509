"""The life of a command record: which answer moves it where. Pure logic, no IO.

A record starts ``pending`` (submitted; published once its ``sent`` event exists). Gateway
answers move it forward along ``pending < accepted < running < final``; it never moves back,
and a final state stays final, with one exception: ``timed_out`` is the control service's own
verdict ("no answer in time"), so a real final answer that arrives later replaces it. A
gateway finishes a siren signal even when its uplink drops and reports when it is back; that
report is a fact, the timeout was a guess.

Every answer is still kept as an event of the record, whether or not it moves the state, so a
refusal of a duplicate or replayed copy stays readable.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL", "OPEN", "RecordState", "next_state"]


class RecordState(StrEnum):
    PENDING = "pending"  # submitted; waiting to be published, or for the first answer
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # no final answer by expiry + grace (the service's verdict)
    # A siren command stopped by a signed siren.cancel (the gateway's answer), or withdrawn
    # before it was published (the service's, when its activation was cancelled).
    CANCELLED = "cancelled"


# Event states that are not gateway answers: the submission and the publication.
SUBMITTED_EVENT = "pending"
SENT_EVENT = "sent"

FINAL = frozenset(
    {
        RecordState.SUCCEEDED,
        RecordState.FAILED,
        RecordState.EXPIRED,
        RecordState.REJECTED,
        RecordState.TIMED_OUT,
        RecordState.CANCELLED,
    }
)
OPEN = frozenset({RecordState.PENDING, RecordState.ACCEPTED, RecordState.RUNNING})
_REFUSALS = frozenset({RecordState.REJECTED, RecordState.EXPIRED})
_RANK = {RecordState.PENDING: 0, RecordState.ACCEPTED: 1, RecordState.RUNNING: 2}


def _rank(state: RecordState) -> int:
    return _RANK.get(state, 3)


def next_state(current: RecordState, answer: RecordState) -> RecordState | None:
    """The record's state after ``answer``, or None when the record keeps its state."""
    if current is RecordState.TIMED_OUT:
        return answer if answer in FINAL else None
    if current in FINAL:
        return None
    if current in (RecordState.ACCEPTED, RecordState.RUNNING) and answer in _REFUSALS:
        # The gateway accepted this id once; a later refusal is about another copy of it (a
        # duplicate delivery, or a replay), which the gateway did not execute. The first copy
        # still runs and will report.
        return None
    return answer if _rank(answer) > _rank(current) else None
