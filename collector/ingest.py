"""Turn contract messages into store records. Pure logic: no IO, no asyncio.

Every message ends up in exactly one of: a record to store, or a counted, logged reason why
not. Nothing here raises past ``Ingest.convert``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from shelterwatch.contract import (
    DeviceData,
    DeviceState,
    GatewayState,
    TopicKind,
    Value,
    parse_topic,
)
from shelterwatch.errors import ContractError
from shelterwatch.store import DeviceStatus, Sample

__all__ = ["GatewayStatus", "Ingest", "IngestStats"]

log = logging.getLogger(__name__)

_MIN_TS_MS = 946_684_800_000  # 2000-01-01: anything older is a device clock that was never set
_INT64 = 2**63
_MAX_STRING = 4096


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's birth or death (its retained state topic; the offline form is its will).

    Not stored; the alert engine raises gateway-offline alerts from it.
    """

    gateway: str
    site: str
    online: bool
    ts_ms: int


@dataclass(slots=True)
class IngestStats:
    messages: int = 0
    samples: int = 0
    values: int = 0
    statuses: int = 0
    malformed: int = 0
    oversized: int = 0  # payloads over max_payload_bytes, dropped unparsed
    unknown_topic: int = 0
    out_of_range: int = 0
    seq_gaps: int = 0
    # Messages a seq gap says were not received and that no replay has filled in (yet).
    missing: int = 0
    recovered: int = 0  # gap entries later filled by a historical (replayed) message
    historical: int = 0  # replayed messages received

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Gateway:
    site: str = ""
    district: str = ""  # from its state; "" when it names none
    last_seq: int = -1
    kinds: dict[str, str] = field(default_factory=dict)
    # seqs skipped by the live stream; a gateway's outbox replays them later as historical.
    missing: set[int] = field(default_factory=set)
    # Replayed seqs ahead of the live stream: a restarted gateway may replay its backlog
    # before the collector has seen the live message that reveals the gap.
    early: set[int] = field(default_factory=set)


_MAX_TRACKED_GAP = 1_000_000


class Ingest:
    def __init__(
        self,
        prefix: str,
        *,
        max_future_ms: int = 86_400_000,
        track_gaps: bool = True,
        max_payload_bytes: int = 256 * 1024,
    ) -> None:
        self._prefix = prefix
        self._max_payload = max_payload_bytes
        self._max_future_ms = max_future_ms
        self._track_gaps = track_gaps
        self._gateways: dict[str, _Gateway] = {}
        self.stats = IngestStats()
        self._warned: set[str] = set()

    def convert(self, topic: str, payload: bytes, now_ms: int) -> Sample | DeviceStatus | None:
        """A record to store, or None when the message is not stored (it is counted)."""
        record = self.convert_any(topic, payload, now_ms)
        return None if isinstance(record, GatewayStatus) else record

    def convert_any(
        self, topic: str, payload: bytes, now_ms: int
    ) -> Sample | DeviceStatus | GatewayStatus | None:
        """Like ``convert``, and a gateway's state as a GatewayStatus (for the alert engine)."""
        self.stats.messages += 1
        try:
            parsed = parse_topic(topic, self._prefix)
        except ContractError as exc:
            self.stats.unknown_topic += 1
            self._warn_once(f"topic:{topic}", "ignored a message on %s: %s", topic, exc)
            return None
        if len(payload) > self._max_payload:
            # Parsing megabytes of JSON costs the whole collector time; no contract message
            # comes near the limit, so the size alone says it is not one.
            self.stats.oversized += 1
            self._warn_once(
                f"size:{topic}",
                "dropped a %d-byte payload on %s: over max_payload_bytes (%d)",
                len(payload),
                topic,
                self._max_payload,
            )
            return None
        try:
            match parsed.kind:
                case TopicKind.DEVICE_DATA:
                    data = DeviceData.model_validate_json(payload)
                    return self._sample(parsed.gateway, parsed.device, data, now_ms)
                case TopicKind.DEVICE_STATE:
                    state = DeviceState.model_validate_json(payload)
                    return self._status(parsed.gateway, parsed.device, state)
                case TopicKind.GATEWAY_STATE:
                    gw_state = GatewayState.model_validate_json(payload)
                    gw = self._gw(parsed.gateway)
                    gw.site = gw_state.site
                    gw.district = gw_state.district or ""
                    return GatewayStatus(
                        parsed.gateway, gw_state.site, gw_state.online, gw_state.ts
                    )
                case _:
                    return None
        except ValidationError as exc:
            self.stats.malformed += 1
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            self._warn_once(
                f"malformed:{topic}",
                "malformed payload on %s (%s: %s); message skipped, ingest goes on",
                topic,
                where,
                first["msg"],
            )
            return None

    def _gw(self, gateway: str) -> _Gateway:
        gw = self._gateways.get(gateway)
        if gw is None:
            gw = self._gateways[gateway] = _Gateway()
        return gw

    def _sample(self, gateway: str, device: str, data: DeviceData, now_ms: int) -> Sample | None:
        gw = self._gw(gateway)
        if self._track_gaps:
            self._check_seq(gateway, gw, data)
        if not _MIN_TS_MS <= data.ts <= now_ms + self._max_future_ms:
            self.stats.out_of_range += 1
            self._warn_once(
                f"ts:{gateway}",
                "gateway %s sent ts=%d, outside the accepted range; check its "
                "clock (NTP). Message skipped",
                gateway,
                data.ts,
            )
            return None
        fields = self._fields(gateway, device, data.values)
        if not fields:
            return None  # quality-only message: nothing to store as a value
        kind = data.kind or gw.kinds.get(device) or "unknown"
        site = data.site or gw.site or "unknown"
        self.stats.samples += 1
        self.stats.values += len(fields)
        return Sample(kind, site, gateway, device, data.ts, fields, data.district or gw.district)

    def _fields(self, gateway: str, device: str, values: Mapping[str, Value]) -> dict[str, Value]:
        fields: dict[str, Value] = {}
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                bad = True
            elif isinstance(value, int) and not isinstance(value, bool):
                bad = not -_INT64 <= value < _INT64
            elif isinstance(value, str):
                bad = len(value) > _MAX_STRING
            else:
                bad = False
            if bad or not name:
                self.stats.out_of_range += 1
                self._warn_once(
                    f"range:{gateway}/{device}/{name}",
                    "%s/%s point %r: value out of range (%.60r); value skipped",
                    gateway,
                    device,
                    name,
                    value,
                )
                continue
            fields[name] = value
        return fields

    def _check_seq(self, gateway: str, gw: _Gateway, data: DeviceData) -> None:
        if data.seq in gw.missing:
            # A replay (or a late redelivery) fills the gap.
            gw.missing.discard(data.seq)
            self.stats.missing -= 1
            self.stats.recovered += 1
            if not gw.missing:
                log.info("gateway %s: every message of its earlier gaps has arrived", gateway)
        if data.historical:
            self.stats.historical += 1
            if data.seq > gw.last_seq and len(gw.early) < _MAX_TRACKED_GAP:
                gw.early.add(data.seq)
            return
        if gw.last_seq >= 0 and data.seq > gw.last_seq + 1:
            skipped = range(gw.last_seq + 1, data.seq)
            if len(skipped) <= _MAX_TRACKED_GAP - len(gw.missing):
                lost = [s for s in skipped if s not in gw.early] if gw.early else list(skipped)
                gw.missing.update(lost)
                gap = len(lost)
            else:
                gap = len(skipped)
            if gap:
                self.stats.seq_gaps += 1
                self.stats.missing += gap
                log.warning(
                    "gateway %s: %d message(s) not received before seq %d; counted as "
                    "missing until its outbox replays them",
                    gateway,
                    gap,
                    data.seq,
                )
        # A much lower seq means the gateway started counting again (its outbox was lost).
        if data.seq > gw.last_seq or data.seq < gw.last_seq - _MAX_TRACKED_GAP or data.seq == 0:
            gw.last_seq = data.seq
            if gw.early:
                gw.early = {s for s in gw.early if s > data.seq}

    def _status(self, gateway: str, device: str, state: DeviceState) -> DeviceStatus:
        gw = self._gw(gateway)
        if state.kind:
            gw.kinds[device] = state.kind
        self.stats.statuses += 1
        return DeviceStatus(
            site=gw.site or "unknown",
            gateway=gateway,
            device=device,
            kind=state.kind or "unknown",
            ts_ms=state.ts,
            online=state.online,
            error=state.error or "",
            units={name: info.unit for name, info in state.points.items()},
            district=gw.district,
        )

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key in self._warned:
            log.debug(msg, *args)
            return
        if len(self._warned) < 10_000:
            self._warned.add(key)
        log.warning(msg, *args)
