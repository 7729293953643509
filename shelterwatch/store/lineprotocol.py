"""InfluxDB line protocol for samples and device statuses, with the escaping rules of InfluxDB 1.x.

    measurement,tag=value,tag=value field=1.5,n=3i,on=true,s="text" 1700000000000

Rules (InfluxDB 1.x, which also bind 2.x and 3.x):
- measurement: escape ``,`` and space;
- tag keys, tag values and field keys: escape ``,``, ``=`` and space;
- string field values: quoted, escape ``"`` and ``\\``;
- ints end in ``i``, bools are ``true``/``false``, floats use ``repr`` (shortest round-trip);
- timestamps are epoch ms: the writer posts with ``precision=ms``.

What line protocol cannot carry:
- NaN and ±inf: no float syntax exists for them, and ints outside int64 overflow. Such fields are
  dropped and counted (``Encoded.dropped``), so one glitching sensor does not sink a batch;
  a sample left without fields produces no line.
- a newline in a name or tag value, and a backslash at the end of one or in front of a character
  that must be escaped: 1.x does not unescape ``\\\\``, so these cannot be written unambiguously.
  They raise LineProtocolError (IDs are slugs by contract, so this means a bug upstream).
- empty tag values: InfluxDB rejects them, and an absent tag reads back as "" anyway, so the
  tag is left out (a sample or status without a district has no ``district`` tag).

Tags are written sorted by key (``device``, ``district``, ``gateway``, ``kind``, ``site``), the
order InfluxDB keeps them in, which spares it sorting them on every line.

This is the collector's hot path: series keys and field keys are escaped once per batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from shelterwatch.store.base import DeviceStatus, FieldValue, Sample

__all__ = [
    "STATUS_MEASUREMENT",
    "Encoded",
    "LineProtocolError",
    "encode_samples",
    "encode_statuses",
    "escape_field_key",
    "escape_measurement",
    "escape_tag",
    "format_field_value",
    "format_samples",
    "format_statuses",
    "units_json",
]

STATUS_MEASUREMENT = "device_status"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_MEASUREMENT_SPECIAL = ", "
_TAG_SPECIAL = ",= "
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})


class LineProtocolError(ValueError):
    """A name or tag value that line protocol cannot represent."""


class Encoded(NamedTuple):
    data: bytes
    lines: int
    dropped: int  # fields left out because line protocol cannot hold their value


def _check(value: str, special: str, what: str) -> None:
    if "\n" in value:
        raise LineProtocolError(f"{what} {value!r} contains a newline")
    if "\\" in value:
        if value.endswith("\\"):
            raise LineProtocolError(f"{what} {value!r} ends in a backslash")
        for ch in special:
            if "\\" + ch in value:
                raise LineProtocolError(f"{what} {value!r} has a backslash before {ch!r}")


def escape_measurement(name: str) -> str:
    if not name:
        raise LineProtocolError("empty measurement name")
    _check(name, _MEASUREMENT_SPECIAL, "measurement")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str, what: str = "tag") -> str:
    """Escape a tag key, tag value or field key."""
    _check(text, _TAG_SPECIAL, what)
    return text.translate(_TAG_ESCAPES)


def escape_field_key(key: str) -> str:
    if not key:
        raise LineProtocolError("empty field key")
    return escape_tag(key, "field key")


def format_field_value(value: FieldValue) -> str | None:
    """The line-protocol text of one field value, or None if line protocol cannot hold it."""
    # bool first: it is a subclass of int.
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return f"{value}i" if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}: {value!r}")


def _series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,k=v,...`` with tags in the given order (callers pass them sorted by key,
    which spares InfluxDB sorting them on every line)."""
    parts = [escape_measurement(measurement)]
    for key, value in tags:
        if value:
            parts.append(f"{key}={escape_tag(value, f'tag {key}')}")
    return ",".join(parts)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        # A lone surrogate, e.g. from a JSON "\\ud800" escape: not text any store can hold.
        bad = text[max(exc.start - 20, 0) : exc.end + 20]
        raise LineProtocolError(f"text that is not valid Unicode near {bad!r}") from exc


def encode_samples(samples: Iterable[Sample]) -> Encoded:
    lines: list[str] = []
    dropped = 0
    series: dict[tuple[str, str, str, str, str], str] = {}
    keys: dict[str, str] = {}
    fmt = format_field_value
    for s in samples:
        skey = (s.measurement, s.site, s.gateway, s.device, s.district)
        prefix = series.get(skey)
        if prefix is None:
            prefix = series[skey] = _series_key(
                s.measurement,
                (
                    ("device", s.device),
                    ("district", s.district),
                    ("gateway", s.gateway),
                    ("site", s.site),
                ),
            )
        fields: list[str] = []
        for key, value in s.fields.items():
            text = fmt(value)
            if text is None:
                dropped += 1
                continue
            ekey = keys.get(key)
            if ekey is None:
                ekey = keys[key] = escape_field_key(key)
            fields.append(f"{ekey}={text}")
        if fields:
            lines.append(f"{prefix} {','.join(fields)} {int(s.ts_ms)}\n")
    return Encoded(_utf8("".join(lines)), len(lines), dropped)


def format_samples(samples: Iterable[Sample]) -> bytes:
    return encode_samples(samples).data


def units_json(units: Mapping[str, str] | None) -> str:
    """Units as stored: a JSON object with sorted keys, so equal units compare equal."""
    return json.dumps(dict(sorted((units or {}).items())), ensure_ascii=False)


def encode_statuses(statuses: Iterable[DeviceStatus]) -> Encoded:
    lines = []
    for st in statuses:
        prefix = _series_key(
            STATUS_MEASUREMENT,
            (
                ("device", st.device),
                ("district", st.district),
                ("gateway", st.gateway),
                ("kind", st.kind),
                ("site", st.site),
            ),
        )
        units = format_field_value(units_json(st.units))
        online = "true" if st.online else "false"
        error = format_field_value(st.error)
        lines.append(f"{prefix} online={online},error={error},units={units} {int(st.ts_ms)}\n")
    return Encoded(_utf8("".join(lines)), len(lines), 0)


def format_statuses(statuses: Iterable[DeviceStatus]) -> bytes:
    return encode_statuses(statuses).data
