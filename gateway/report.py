"""Report by exception: which values changed enough to publish, and when a snapshot is due.

Pure logic. A number is reported when it moved more than its point's deadband since the last
*reported* value (not the last read, so that slow drift is still reported); anything else
when it differs. A change of quality is always reported.
"""

from __future__ import annotations

from collections.abc import Mapping

from shelterwatch.contract import Quality, Value

__all__ = ["ReportFilter"]


class ReportFilter:
    def __init__(self, deadbands: Mapping[str, float]) -> None:
        self._deadbands = dict(deadbands)
        self._reported: dict[str, Value] = {}
        self._quality: dict[str, Quality] = {}

    def changes(
        self, values: Mapping[str, Value], quality: Mapping[str, Quality]
    ) -> tuple[dict[str, Value], dict[str, Quality]]:
        """Values and qualities to publish now; records them as reported."""
        changed: dict[str, Value] = {}
        reported, was_bad = self._reported, self._quality
        for name, value in values.items():
            last = reported.get(name)
            # Hot path: most readings equal the last reported one (same type, same value).
            if last is not None and type(last) is type(value) and last == value and not was_bad:
                continue
            if (
                last is None
                or was_bad.get(name) is not None
                or _moved(last, value, self._deadbands.get(name, 0.0))
            ):
                changed[name] = value
                reported[name] = value
        if not quality and not was_bad:
            return changed, {}
        bad: dict[str, Quality] = {}
        for name, q in quality.items():
            if was_bad.get(name) is not q:
                bad[name] = q
        # A point back to good quality is reported through its value above.
        self._quality = dict(quality)
        return changed, bad

    def snapshot(self, values: Mapping[str, Value], quality: Mapping[str, Quality]) -> None:
        """Record a full snapshot as reported."""
        self._reported.update(values)
        self._quality = dict(quality)


def _moved(last: Value, value: Value, deadband: float) -> bool:
    if isinstance(value, bool) or isinstance(last, bool):
        return value != last
    if isinstance(value, int | float) and isinstance(last, int | float):
        return abs(value - last) > deadband if deadband > 0 else value != last
    return value != last
