"""The words CAP messages carry for people, in Chinese and English: signal patterns, times.

Numbers and times are written the same way whatever the machine's locale, so a message
built anywhere reads the same (and tests are deterministic).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shelterwatch.signals import SignalDefinition

__all__ = [
    "cap_time",
    "coordinate",
    "cycle_s",
    "duration_en",
    "duration_zh",
    "pattern_en",
    "pattern_zh",
    "time_en",
    "time_zh",
]


def _n(value: float) -> str:
    return f"{value:g}"


def cycle_s(signal: SignalDefinition) -> float:
    """The signal's full length, final silence included: 预先警报 is "3 minutes"."""
    return sum(s.on_s + s.off_s for s in signal.segments) * signal.repeat


def duration_zh(seconds: float) -> str:
    return f"{_n(seconds / 60)}分钟" if seconds % 60 == 0 else f"{_n(seconds)}秒"


def duration_en(seconds: float) -> str:
    return f"{_n(seconds / 60)} min" if seconds % 60 == 0 else f"{_n(seconds)} s"


def _continuous(signal: SignalDefinition) -> bool:
    return len(signal.segments) == 1 and signal.segments[0].off_s == 0 and signal.repeat == 1


def pattern_zh(signal: SignalDefinition) -> str:
    """E.g. 鸣36秒停24秒，反复3遍，共3分钟; 连续鸣响3分钟 for a continuous tone."""
    if _continuous(signal):
        return f"连续鸣响{duration_zh(signal.segments[0].on_s)}"
    steps = [
        f"鸣{_n(s.on_s)}秒停{_n(s.off_s)}秒" if s.off_s else f"鸣{_n(s.on_s)}秒"
        for s in signal.segments
    ]
    repeat = f"，反复{signal.repeat}遍" if signal.repeat > 1 else ""
    return f"{'，'.join(steps)}{repeat}，共{duration_zh(cycle_s(signal))}"


def pattern_en(signal: SignalDefinition) -> str:
    """E.g. 36 s on, 24 s off, repeated 3 times (3 min); continuous for 3 min."""
    if _continuous(signal):
        return f"continuous for {duration_en(signal.segments[0].on_s)}"
    steps = [
        f"{_n(s.on_s)} s on, {_n(s.off_s)} s off" if s.off_s else f"{_n(s.on_s)} s on"
        for s in signal.segments
    ]
    repeat = f", repeated {signal.repeat} times" if signal.repeat > 1 else ""
    return f"{', '.join(steps)}{repeat} ({duration_en(cycle_s(signal))} in all)"


def _offset(at: datetime) -> str:
    offset = at.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def time_zh(at: datetime) -> str:
    return f"{at.year}年{at.month}月{at.day}日{at:%H:%M}（{_offset(at)}）"


def time_en(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} ({_offset(at)})"


def cap_time(at: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, no fraction; UTC is written -00:00 (3.3.2)."""
    text = at.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def coordinate(value: float) -> str:
    """Degrees or kilometres to six decimals (about 0.1 m), without trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
