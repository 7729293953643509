"""The MQTT contract, v1: topics and payloads that cross between gateways and the platform.

Everything a gateway and the platform say to each other is defined here, and nothing else
crosses that line. `docs/contract.md` documents the same thing for third parties; a test keeps
the two in step.

Topics (``{p}`` is the prefix, ``shelterwatch/v1`` by default):

    {p}/gw/{gw}/state               gateway birth/death, retained, also the MQTT will
    {p}/gw/{gw}/dev/{dev}/data      readings, by exception plus periodic full snapshots
    {p}/gw/{gw}/dev/{dev}/state     device online/offline, retained
    {p}/gw/{gw}/cmd                 command to a gateway
    {p}/gw/{gw}/cmd/ack             command outcome
    {p}/alert/{site}/{rule}/{dev}   alert raised/cleared, retained while active
    {p}/cap                         CAP 1.2 XML for the public warning channels (outbound)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from shelterwatch.errors import ContractError

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_PREFIX",
    "SIREN_ACTIVATE",
    "SIREN_CANCEL",
    "SIREN_PRIORITY",
    "SLUG_PATTERN",
    "Alert",
    "CommandAck",
    "CommandRequest",
    "CommandState",
    "DeviceData",
    "DeviceHealth",
    "DeviceState",
    "GatewayState",
    "OutboxHealth",
    "PointInfo",
    "Posture",
    "Quality",
    "SignalSegment",
    "SignalSpec",
    "SirenKind",
    "SirenOrder",
    "SirenOutcome",
    "SitePosture",
    "Topic",
    "TopicKind",
    "Value",
    "alert_topic",
    "cap_topic",
    "cmd_ack_topic",
    "cmd_topic",
    "data_topic",
    "device_state_topic",
    "gateway_state_topic",
    "is_slug",
    "parse_topic",
    "posture_topic",
    "subscriptions",
]

CONTRACT_VERSION = 1
DEFAULT_PREFIX = "shelterwatch/v1"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_SLUG = re.compile(SLUG_PATTERN)

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
EpochMs = Annotated[int, Field(ge=0)]
# Strict types keep JSON's true/1/1.0/"1" apart: a bool never becomes 1, a number never a string.
# NaN and infinity are refused: JSON cannot carry them, and no reading is NaN.
Value = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr


def is_slug(text: str) -> bool:
    return bool(_SLUG.fullmatch(text))


def _check_slug(name: str, text: str) -> str:
    if not _SLUG.fullmatch(text):
        raise ContractError(f"{name} {text!r} is not a slug ([a-z0-9][a-z0-9_-]{{0,63}})")
    return text


# --------------------------------------------------------------------------------------------
# Topics


class TopicKind(StrEnum):
    GATEWAY_STATE = "gateway_state"
    DEVICE_DATA = "device_data"
    DEVICE_STATE = "device_state"
    COMMAND = "command"
    COMMAND_ACK = "command_ack"
    ALERT = "alert"
    POSTURE = "posture"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic. Fields that the kind does not use are empty strings."""

    kind: TopicKind
    gateway: str = ""
    device: str = ""
    site: str = ""
    rule: str = ""


def gateway_state_topic(gateway: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/gw/{_check_slug('gateway', gateway)}/state"


def data_topic(gateway: str, device: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/gw/{_check_slug('gateway', gateway)}/dev/{_check_slug('device', device)}/data"


def device_state_topic(gateway: str, device: str, prefix: str = DEFAULT_PREFIX) -> str:
    gw, dev = _check_slug("gateway", gateway), _check_slug("device", device)
    return f"{prefix}/gw/{gw}/dev/{dev}/state"


def cmd_topic(gateway: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/gw/{_check_slug('gateway', gateway)}/cmd"


def cmd_ack_topic(gateway: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/gw/{_check_slug('gateway', gateway)}/cmd/ack"


def alert_topic(site: str, rule: str, device: str, prefix: str = DEFAULT_PREFIX) -> str:
    s, r, d = _check_slug("site", site), _check_slug("rule", rule), _check_slug("device", device)
    return f"{prefix}/alert/{s}/{r}/{d}"


def cap_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Where the control service publishes CAP 1.2 messages (XML, not JSON) for the public
    warning channels (broadcast, SMS, TV) that sound in parallel with the sirens. Outbound
    only: no gateway reads it."""
    return f"{prefix}/cap"


def posture_topic(site: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the control service publishes a site's declared posture (retained, QoS 1); the
    collector's alert engine reads it to gate its posture rules."""
    return f"{prefix}/posture/{_check_slug('site', site)}"


def subscriptions(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The filters a collector subscribes to: all telemetry and state, nothing else."""
    return [f"{prefix}/gw/+/state", f"{prefix}/gw/+/dev/+/data", f"{prefix}/gw/+/dev/+/state"]


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> Topic:
    """Parse a contract topic, or raise ContractError naming what is wrong with it."""
    if not topic.startswith(prefix + "/"):
        raise ContractError(f"topic {topic!r} is outside the prefix {prefix!r}")
    parts = topic[len(prefix) + 1 :].split("/")
    match parts:
        case ["gw", gw, "state"]:
            return Topic(TopicKind.GATEWAY_STATE, gateway=_check_slug("gateway", gw))
        case ["gw", gw, "dev", dev, "data"]:
            return Topic(
                TopicKind.DEVICE_DATA,
                gateway=_check_slug("gateway", gw),
                device=_check_slug("device", dev),
            )
        case ["gw", gw, "dev", dev, "state"]:
            return Topic(
                TopicKind.DEVICE_STATE,
                gateway=_check_slug("gateway", gw),
                device=_check_slug("device", dev),
            )
        case ["gw", gw, "cmd"]:
            return Topic(TopicKind.COMMAND, gateway=_check_slug("gateway", gw))
        case ["gw", gw, "cmd", "ack"]:
            return Topic(TopicKind.COMMAND_ACK, gateway=_check_slug("gateway", gw))
        case ["alert", site, rule, dev]:
            return Topic(
                TopicKind.ALERT,
                site=_check_slug("site", site),
                rule=_check_slug("rule", rule),
                device=_check_slug("device", dev),
            )
        case ["posture", site]:
            return Topic(TopicKind.POSTURE, site=_check_slug("site", site))
    raise ContractError(f"topic {topic!r} is not part of contract v{CONTRACT_VERSION}")


# --------------------------------------------------------------------------------------------
# Payloads


class _Payload(BaseModel):
    # Unknown keys are ignored so that a newer gateway can add fields without breaking v1 readers.
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Quality(StrEnum):
    BAD = "bad"  # the device did not answer or the value could not be decoded
    STALE = "stale"  # the last good value is older than the device's poll interval allows


class PointInfo(_Payload):
    """What a consumer needs to know about a point to store and show it."""

    unit: str = ""
    kind: Literal["number", "bool", "string"] = "number"


class OutboxHealth(_Payload):
    """The gateway's store-and-forward buffer: what waits to be published, and what was lost."""

    depth: Annotated[int, Field(ge=0)]
    bytes: Annotated[int, Field(ge=0)]
    dropped: Annotated[int, Field(ge=0)]
    oldest_ts: EpochMs | None = None


class DeviceHealth(_Payload):
    online: bool
    polls: Annotated[int, Field(ge=0)]
    errors: Annotated[int, Field(ge=0)]
    latency_ms: Annotated[float, Field(ge=0)]


class GatewayState(_Payload):
    """Birth and death of a gateway. Published retained; the offline form is the MQTT will.

    While online the gateway republishes it periodically with its health: uptime, the
    outbox (depth, drops) and per-device poll errors and latency. ``district`` names the
    site's district, when the gateway is configured with one.
    """

    online: bool
    ts: EpochMs
    site: Slug
    district: Slug | None = None
    version: str = ""
    devices: list[Slug] = Field(default_factory=list)
    uptime_s: Annotated[float, Field(ge=0)] | None = None
    outbox: OutboxHealth | None = None
    health: dict[str, DeviceHealth] = Field(default_factory=dict)


class DeviceData(_Payload):
    """Readings of one device. ``full`` marks a complete snapshot; otherwise only changes.

    ``seq`` counts every data message of one gateway (not per device), so the collector can
    see gaps. ``quality`` lists only points that are not good; a bad point has no value.

    ``site``, ``district`` and ``kind`` repeat what the retained state messages say, so that
    each data message can be stored on its own: by a collector that restarted with messages
    queued in its session (the broker does not resend retained state then), or by a member of
    a shared subscription, which never receives retained messages. ``district`` is absent when
    the gateway has none.
    """

    ts: EpochMs
    seq: Annotated[int, Field(ge=0)]
    site: Slug | None = None
    district: Slug | None = None
    kind: Slug | None = None
    values: dict[str, Value] = Field(default_factory=dict)
    quality: dict[str, Quality] = Field(default_factory=dict)
    full: bool = False
    # Set on messages replayed from a gateway's outbox after an uplink outage.
    historical: bool = False


class DeviceState(_Payload):
    """Online/offline state of a device, retained, with what its points mean."""

    online: bool
    ts: EpochMs
    kind: str = ""
    profile: str = ""
    error: str | None = None
    points: dict[str, PointInfo] = Field(default_factory=dict)


class CommandState(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Siren actions. One ``siren.activate`` command per gateway carries all of that gateway's target
# sirens; ``siren.cancel`` stops every siren of an activation on the gateway that receives it.
SIREN_ACTIVATE = "siren.activate"
SIREN_CANCEL = "siren.cancel"

Seconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]


class SirenKind(StrEnum):
    """Why a siren acts. The order is the priority: a later kind preempts an earlier one."""

    SILENT_TEST = "silent_test"  # a diagnostic through the controller, no sound
    AUDIBLE_TEST = "audible_test"  # a short tone, or a full signal on a test day
    DRILL = "drill"
    LIVE = "live"


SIREN_PRIORITY: dict[SirenKind, int] = {kind: rank for rank, kind in enumerate(SirenKind)}


class SignalSegment(_Payload):
    """One sound-then-silence step of a signal. ``off_s`` may be 0 (continuous)."""

    on_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
    off_s: Seconds = 0.0


class SignalSpec(_Payload):
    """A signal as the gateway runs it: segments played in order, the whole ``repeat`` times.

    ``number`` is the signal's number on controllers that hold built-in signals (the siren
    profile's ``signal`` register); controllers that only switch a relay are timed by the
    gateway from the segments. ``tone`` names the sound (steady, wail, ...), for controllers
    that can choose it.
    """

    name: Slug
    segments: Annotated[list[SignalSegment], Field(min_length=1, max_length=64)]
    repeat: Annotated[int, Field(ge=1, le=100)] = 1
    tone: Annotated[str, Field(max_length=32)] = "steady"
    number: Annotated[int, Field(ge=1, le=65535)] | None = None

    @property
    def duration_s(self) -> float:
        """From the first sound to the end of the last sound (the final silence excluded)."""
        cycle = sum(s.on_s + s.off_s for s in self.segments)
        return cycle * self.repeat - self.segments[-1].off_s


class SirenOrder(_Payload):
    """What a ``siren.activate`` command asks of one gateway's sirens.

    ``activation`` is the control service's activation id, the same on every gateway's
    command; a gateway runs an activation on a siren at most once, however many commands
    carry it. ``signal`` is absent for a silent test. ``exercise`` labels everything an
    exercise sends, so nothing it sends can be taken for a live alert.
    """

    activation: Annotated[str, Field(min_length=1, max_length=128)]
    kind: SirenKind
    sirens: Annotated[list[Slug], Field(min_length=1, max_length=1000)]
    signal: SignalSpec | None = None
    exercise: Annotated[str, Field(max_length=128)] | None = None


class SirenOutcome(StrEnum):
    """What became of one siren in an activation, from the device's own feedback."""

    STARTED = "started"  # the controller confirms it is sounding (not final)
    SOUNDED = "sounded"  # it sounded the whole signal
    TEST_PASSED = "test_passed"
    TEST_FAILED = "test_failed"  # the controller's reason is in the detail
    UNREACHABLE = "unreachable"  # the gateway could not talk to the controller
    CANCELLED = "cancelled"  # a signed cancel (or a higher-priority activation) stopped it
    FAILED = "failed"  # reachable, but it did not sound; the detail says what it read


class CommandRequest(_Payload):
    """A command to a gateway. ``sig`` authenticates it (see the control service).

    ``write`` names its ``device``; ``siren.activate`` carries its ``siren`` order instead,
    and ``siren.cancel`` names the activation in ``params.activation``.
    """

    id: Annotated[str, Field(min_length=1, max_length=128)]
    device: Slug | None = None
    action: Annotated[str, Field(min_length=1, max_length=64)]
    params: dict[str, Value] = Field(default_factory=dict)
    siren: SirenOrder | None = None
    ts: EpochMs
    expires: EpochMs
    actor: str
    sig: str = ""


class CommandAck(_Payload):
    """The gateway's answer to a command.

    Without ``device`` it is about the whole command. A ``siren.activate`` command also gets
    one answer per siren with ``device`` and its ``outcome``: ``started`` when the controller
    confirms the sound, then a final outcome.
    """

    id: Annotated[str, Field(min_length=1, max_length=128)]
    state: CommandState
    detail: str = ""
    ts: EpochMs
    device: Slug | None = None
    outcome: SirenOutcome | None = None


class Alert(_Payload):
    """An alert event: raised (``active``) or cleared, for one rule and one subject.

    ``ts`` is the time of this event and ``raised_ts`` the time the alert was raised (the same
    on the raise). ``kind`` names the rule kind (threshold, trend, stale, flatline, offline,
    posture); ``point`` the reading it watches, when there is one; ``predicted_ts`` is when a
    trend rule expects the limit to be reached.
    """

    active: bool
    ts: EpochMs
    severity: Literal["critical", "major", "minor", "warning"] = "warning"
    message: str = ""
    value: Value | None = None
    raised_ts: EpochMs | None = None
    kind: str = ""
    point: str | None = None
    predicted_ts: EpochMs | None = None


Posture = Literal["peacetime", "converting", "wartime"]


class SitePosture(_Payload):
    """A site's declared posture (平时 / 转换中 / 战时), retained on ``{p}/posture/{site}``.

    ``order`` names the conversion order that set it, ``kind`` whether that order was a
    ``drill`` or ``real``, and ``exercise`` the exercise label a drill carries. Readers gate
    rules on ``posture`` alone: a drill converts for real, so its checks are the same.
    """

    posture: Posture
    ts: EpochMs
    order: Annotated[str, Field(max_length=64)] | None = None
    kind: Literal["drill", "real"] | None = None
    exercise: Annotated[str, Field(max_length=64)] | None = None
