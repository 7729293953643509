"""Expand a panel's raw InfluxQL the way Grafana does before InfluxDB sees it.

Grafana (10 and later, InfluxQL through the backend) expands a raw query in two steps:

1. **In the browser**, the template service replaces the dashboard's variables (``$site``,
   ``${site}``, ``${site:format}``, ``[[site]]``), formatting each value with the InfluxDB
   data source's ``interpolateQueryExpr``:

   - a string that starts like a number (JavaScript ``parseFloat`` is not NaN) stays as is;
   - a multi-value variable: every value is regex-escaped and a list becomes ``(a|b)``, even
     a list of one;
   - a single-value variable is regex-escaped only where the query uses it inside ``/.../``;
   - "All" (value ``$__all``) is the variable's custom all value, inserted unescaped, or
     else the list of all its options, formatted as above.

   ``$__interval`` and ``$__interval_ms`` are left for the backend; ``$timeFilter`` and
   ``$interval`` are not variables, so they pass through too.
2. **In the server**, the InfluxDB plugin replaces ``$timeFilter`` with
   ``time >= <from>ms and time <= <to>ms``, then ``$interval``, ``$__interval_ms`` and
   ``$__interval`` with the request's interval. That interval was computed in the browser
   (``rangeutil.calculateInterval``): range / max data points, rounded to one of Grafana's
   nice intervals, and at least the data source's minimum interval (``timeInterval``).

Older Grafana (the browser-side InfluxQL path) wrote a relative range as
``time >= now() - 6h and time <= now()``; ``time_filter`` gives that form with
``relative=True``. Pure logic: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALL",
    "MacroError",
    "TimeRange",
    "Variable",
    "calculate_interval_ms",
    "escape_regex",
    "expand",
    "format_interval",
    "interpolate_variables",
    "interval_to_ms",
    "round_interval_ms",
    "time_filter",
    "variable_names",
]

ALL = "$__all"  # the value Grafana stores when "All" is selected

# Grafana's DEFAULT: a panel without maxDataPoints gets its width in pixels.
_RESOLUTION_FALLBACK = 1500

# TemplateSrv's variable syntax: $name, [[name:fmt]], ${name.field:fmt}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
# @grafana/data escapeRegex: these characters get a backslash. Dashes and spaces do not.
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
# JavaScript parseFloat() reads a number from the start of the string and ignores the rest.
_JS_FLOAT_PREFIX = re.compile(r"^\s*[+-]?(Infinity|\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)", re.I)
# Text between two slashes, as Grafana's `(?<=\/).+?(?=\/)` finds it.
_BETWEEN_SLASHES = re.compile(r"(?<=/).+?(?=/)", re.M)
_RELATIVE = re.compile(r"^now-(\d+)([dhms])$")
_INTERVAL = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])")
_INTERVAL_SECONDS = {
    "y": 31_536_000,
    "M": 2_592_000,
    "w": 604_800,
    "d": 86_400,
    "h": 3_600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}
# rangeutil.roundInterval: (upper bound exclusive, result) in ms.
_NICE_INTERVALS: tuple[tuple[float, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_ONE_YEAR_MS = 31_536_000_000


class MacroError(ValueError):
    """A query that cannot be expanded: an unknown variable, an interval Grafana rejects."""


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range: absolute epoch ms, plus the raw text when it was relative.

    ``raw_from``/``raw_to`` such as ``now-6h``/``now`` only matter for the older,
    browser-side time filter; the backend always uses the absolute bounds.
    """

    from_ms: int
    to_ms: int
    raw_from: str | None = None
    raw_to: str | None = None

    def __post_init__(self) -> None:
        if self.to_ms < self.from_ms:
            raise MacroError(f"time range ends ({self.to_ms}) before it starts ({self.from_ms})")


@dataclass(frozen=True)
class Variable:
    """A template variable as the query sees it: its selection and its options.

    ``current`` holds the selected values; ``[ALL]`` means "All". ``options`` are what the
    variable's query returned (needed to expand "All" without a custom all value).
    """

    name: str
    current: Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: Sequence[str] = field(default_factory=tuple)

    @property
    def is_all(self) -> bool:
        return list(self.current) == [ALL] or ALL in self.current


def escape_regex(value: str) -> str:
    """@grafana/data ``escapeRegex``: a backslash before ``\\ ^ $ * + ? . ( ) | [ ] { } /``."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _starts_like_number(value: str) -> bool:
    return _JS_FLOAT_PREFIX.match(value) is not None


def _used_in_regex(name: str, query: str) -> bool:
    """Grafana's test whether a single-value variable sits inside ``/.../`` in the query."""
    if not _BETWEEN_SLASHES.search(query):
        return False
    pattern = re.compile(r"/(?:\^)?(.*)(\$" + re.escape(name) + r")(.*)(?:\$)?/", re.M)
    return pattern.search(query) is not None


def _format(value: str | list[str], variable: Variable, query: str) -> str:
    """InfluxDatasource.interpolateQueryExpr."""
    if isinstance(value, str) and _starts_like_number(value):
        return value
    if variable.multi:
        if isinstance(value, str):
            return escape_regex(value)
        return "(" + "|".join(escape_regex(v) for v in value) + ")"
    if _used_in_regex(variable.name, query):
        if isinstance(value, str):
            return escape_regex(value)
        return "(" + "|".join(escape_regex(v) for v in value) + ")"
    if isinstance(value, str):
        return value
    # Grafana would hand the list to its default formatter (comma-joined); no query of ours
    # should depend on that, so say so instead of guessing.
    raise MacroError(
        f"variable ${variable.name} has several values but is used outside a /regex/; "
        f"use it as /^${variable.name}$/ or make it single-value"
    )


def _value_of(variable: Variable) -> str | list[str] | None:
    """The raw value before formatting; None when the custom all value applies."""
    if variable.is_all:
        if variable.all_value:
            return None
        options = [o for o in variable.options if o != ALL]
        if not options:
            raise MacroError(
                f"variable ${variable.name} is set to All but has no options and no custom "
                "all value; give it options or an allValue such as .*"
            )
        return options
    current = list(variable.current)
    if not current:
        raise MacroError(f"variable ${variable.name} has no value selected")
    if variable.multi:
        return current
    return current[0]


def variable_names(query: str) -> list[str]:
    """Every variable name the query refers to, in order, without repeats."""
    names: list[str] = []
    for m in _VARIABLE.finditer(query):
        name = m.group(1) or m.group(2) or m.group(4)
        if name and name not in names:
            names.append(name)
    return names


def interpolate_variables(
    query: str, variables: Mapping[str, Variable], passthrough: Sequence[str] = ()
) -> str:
    """Step 1: the template service. Names in ``passthrough`` are left as they are."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name in passthrough:
            # ${__interval} reaches the backend as $__interval.
            return "$" + name
        variable = variables.get(name)
        if variable is None:
            return m.group(0)  # Grafana leaves unknown names untouched
        fmt = m.group(3) or m.group(6)
        if fmt is not None and fmt not in ("regex", "pipe", "raw"):
            raise MacroError(
                f"${{{name}:{fmt}}}: only the regex, pipe and raw formats are supported"
            )
        value = _value_of(variable)
        if value is None:
            assert variable.all_value is not None
            return variable.all_value  # custom all values are not escaped
        if fmt == "raw":
            return value if isinstance(value, str) else ",".join(value)
        if fmt == "pipe":
            return value if isinstance(value, str) else "|".join(value)
        if fmt == "regex":
            if isinstance(value, str):
                return escape_regex(value)
            escaped = [escape_regex(v) for v in value]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        return _format(value, variable, query)

    return _VARIABLE.sub(replace, query)


def interval_to_ms(text: str) -> int:
    """rangeutil.intervalToMs: ``10s`` → 10000; a bare number is seconds."""
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number:
        return int(number) * 1000
    m = _INTERVAL.match(text)
    if not m:
        raise MacroError(
            f"interval {text!r} is not a Grafana interval such as 500ms, 10s, 1m, 1h or 1d"
        )
    return int(_INTERVAL_SECONDS[m.group(2)] * 1000 * int(float(m.group(1))))


def round_interval_ms(interval_ms: float) -> int:
    """rangeutil.roundInterval: the next nice interval at or below."""
    for bound, nice in _NICE_INTERVALS:
        if interval_ms < bound:
            return nice
    return _ONE_YEAR_MS


def calculate_interval_ms(
    time_range: TimeRange, max_data_points: int | None, min_interval: str | None = None
) -> int:
    """rangeutil.calculateInterval: round first, then apply the minimum interval."""
    resolution = max_data_points or _RESOLUTION_FALLBACK
    interval = round_interval_ms((time_range.to_ms - time_range.from_ms) / resolution)
    low = interval_to_ms(min_interval) if min_interval else 1
    return max(interval, low)


def format_interval(interval_ms: int) -> str:
    """gtime.FormatInterval, the backend's text for ``$__interval`` (truncating, like Go)."""
    units = (
        ("y", _ONE_YEAR_MS),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    )
    for unit, size in units:
        if interval_ms >= size:
            return f"{interval_ms // size}{unit}"
    return "1ms"


def _influx_time(raw: str | None, absolute_ms: int) -> str:
    if raw == "now":
        return "now()"
    if raw is not None:
        m = _RELATIVE.match(raw)
        if m:
            return f"now() - {int(m.group(1))}{m.group(2)}"
    return f"{absolute_ms}ms"


def time_filter(time_range: TimeRange, *, relative: bool = False) -> str:
    """``$timeFilter``: the backend's absolute form, or with ``relative`` the browser's."""
    if relative:
        start = _influx_time(time_range.raw_from, time_range.from_ms)
        end = _influx_time(time_range.raw_to, time_range.to_ms)
        return f"time >= {start} and time <= {end}"
    return f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms"


def expand(
    query: str,
    variables: Mapping[str, Variable],
    time_range: TimeRange,
    *,
    max_data_points: int | None = None,
    min_interval: str | None = None,
    relative_time: bool = False,
) -> str:
    """The query InfluxDB receives for this panel, range and variable selection."""
    text = interpolate_variables(query, variables, passthrough=("__interval", "__interval_ms"))
    interval = calculate_interval_ms(time_range, max_data_points, min_interval)
    interval_text = format_interval(interval)
    # The backend's order: $interval first, then $__interval_ms before $__interval.
    text = text.replace("$timeFilter", time_filter(time_range, relative=relative_time))
    text = text.replace("$interval", interval_text)
    text = text.replace("$__interval_ms", str(interval))
    text = text.replace("$__interval", interval_text)
    return text
