"""The signal timer: when a gateway-timed signal sounds, as offsets from its start. Pure."""

from __future__ import annotations

from shelterwatch.contract import SignalSpec

__all__ = ["sound_intervals"]


def sound_intervals(signal: SignalSpec) -> list[tuple[float, float]]:
    """(on, off) offsets in seconds from the start of the signal, in order.

    A segment with ``off_s`` 0 runs into the next one: the two merge into one sound, so the
    relay is not switched off and on again at the same instant. The silence after the last
    sound is not part of the signal.
    """
    out: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(signal.repeat):
        for segment in signal.segments:
            start, end = t, t + segment.on_s
            if out and abs(out[-1][1] - start) < 1e-9:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
            t = end + segment.off_s
    return out
