"""Outcomes to ack states, and the one-line summary of a whole activation command. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from shelterwatch.contract import CommandState, SirenOutcome

__all__ = ["GOOD", "STATE_OF", "summarize"]

GOOD = frozenset({SirenOutcome.SOUNDED, SirenOutcome.TEST_PASSED})

# The ack state that goes with each per-siren outcome.
STATE_OF: dict[SirenOutcome, CommandState] = {
    SirenOutcome.STARTED: CommandState.RUNNING,
    SirenOutcome.SOUNDED: CommandState.SUCCEEDED,
    SirenOutcome.TEST_PASSED: CommandState.SUCCEEDED,
    SirenOutcome.TEST_FAILED: CommandState.FAILED,
    SirenOutcome.UNREACHABLE: CommandState.FAILED,
    SirenOutcome.FAILED: CommandState.FAILED,
    SirenOutcome.CANCELLED: CommandState.CANCELLED,
}

_NAMED = 5  # name at most this many sirens per outcome in a summary


def summarize(
    outcomes: Mapping[str, SirenOutcome], cancelled_by: str | None = None
) -> tuple[CommandState, str]:
    """The whole command's final state and detail from every siren's final outcome.

    ``succeeded`` when every siren reached its good outcome; ``cancelled`` when the only
    other outcome is ``cancelled``; ``failed`` otherwise. The detail counts outcomes, the
    bad ones first with the sirens named: "1 of 3 sirens: test_failed (siren-02);
    2 test_passed".
    """
    total = len(outcomes)
    counts = Counter(outcomes.values())
    bad = [o for o in SirenOutcome if o in counts and o not in GOOD]
    good = [o for o in SirenOutcome if o in counts and o in GOOD]
    parts: list[str] = []
    for outcome in bad:
        names = sorted(s for s, o in outcomes.items() if o is outcome)
        shown = ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
        parts.append(f"{counts[outcome]} {outcome.value} ({shown})")
    parts.extend(f"{counts[o]} {o.value}" for o in good)
    detail = f"{total} of {total} sirens: none" if not parts else ""
    if parts:
        first, *rest = parts
        count, _, what = first.partition(" ")
        detail = "; ".join([f"{count} of {total} sirens: {what}", *rest])
    if not bad:
        return CommandState.SUCCEEDED, detail
    if bad == [SirenOutcome.CANCELLED]:
        prefix = f"cancelled by {cancelled_by}; " if cancelled_by else ""
        return CommandState.CANCELLED, prefix + detail
    return CommandState.FAILED, detail
