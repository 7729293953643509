"""The plain typed values CAP messages are built from and read into.

Inputs (``SirenAlert``, ``TestDayProgramme`` and their parts) check themselves when built, so
that ``build_alert`` only ever sees values CAP can carry. ``CapRequest`` is what an upstream
message pre-fills; it is a suggestion for a person to approve, never an order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from control.cap.errors import CapError
from control.cap.words import cycle_s
from shelterwatch.contract import SirenKind
from shelterwatch.signals import SignalDefinition

__all__ = [
    "Area",
    "CapRequest",
    "CapSender",
    "CapStatus",
    "Circle",
    "MsgType",
    "Polygon",
    "ProgrammeStep",
    "Reference",
    "SirenAlert",
    "TestDayProgramme",
    "programme_steps",
]

# CAP 1.2 (3.2.1): identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)". The schema does not check it; receivers split references on them.
_CAP_TOKEN = re.compile(r"[^\s,<&]+")
# Characters XML 1.0 cannot carry at all (lxml would refuse them deep inside the build).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class CapStatus(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


def check_token(what: str, value: str) -> str:
    if not _CAP_TOKEN.fullmatch(value):
        raise CapError(f"{what} {value!r} must be non-empty, without spaces, commas, '<' or '&'")
    return value


def check_text(what: str, value: str, *, required: bool = True) -> str:
    if required and not value.strip():
        raise CapError(f"{what} must not be empty")
    if _NOT_XML.search(value):
        raise CapError(f"{what} {value!r} holds control characters XML cannot carry")
    return value


def check_aware(what: str, value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        raise CapError(f"{what} {value.isoformat()} has no timezone; CAP times carry an offset")
    if offset.total_seconds() % 60:
        raise CapError(f"{what} {value.isoformat()}: CAP offsets are whole minutes (+hh:mm)")
    return value


def _check_coordinate(what: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise CapError(f"{what}: latitude {lat} is outside -90..90 (WGS 84 degrees)")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise CapError(f"{what}: longitude {lon} is outside -180..180 (WGS 84 degrees)")


@dataclass(frozen=True, slots=True)
class Circle:
    """A CAP circle: centre in WGS 84 degrees and radius in kilometres (a siren's reach)."""

    lat: float
    lon: float
    radius_km: float

    def __post_init__(self) -> None:
        _check_coordinate("circle", self.lat, self.lon)
        if not (math.isfinite(self.radius_km) and 0.0 <= self.radius_km <= 20_000.0):
            raise CapError(f"circle radius {self.radius_km} km is outside 0..20000")


@dataclass(frozen=True, slots=True)
class Polygon:
    """A closed CAP polygon: at least four (lat, lon) points, the last equal to the first."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 4 or self.points[0] != self.points[-1]:
            raise CapError(
                "polygon needs at least 4 points with the last equal to the first (CAP 3.2.4)"
            )
        for lat, lon in self.points:
            _check_coordinate("polygon", lat, lon)


@dataclass(frozen=True, slots=True)
class Area:
    """Where the alert applies: a name (a district, a siren post) and its shapes, if known."""

    description: str
    circles: tuple[Circle, ...] = ()
    polygons: tuple[Polygon, ...] = ()

    def __post_init__(self) -> None:
        check_text("area description", self.description)


@dataclass(frozen=True, slots=True)
class CapSender:
    """Who publishes: ``id`` is CAP's ``sender`` (e.g. an address), names are for people."""

    id: str
    name_zh: str
    name_en: str
    contact: str | None = None

    def __post_init__(self) -> None:
        check_token("sender", self.id)
        check_text("sender name (zh)", self.name_zh)
        check_text("sender name (en)", self.name_en)
        if self.contact is not None:
            check_text("sender contact", self.contact)


@dataclass(frozen=True, slots=True)
class Reference:
    """An earlier message an Update or Cancel refers to, by CAP's sender,identifier,sent."""

    sender: str
    identifier: str
    sent: datetime

    def __post_init__(self) -> None:
        check_token("reference sender", self.sender)
        check_token("reference identifier", self.identifier)
        check_aware("reference sent", self.sent)


@dataclass(frozen=True, slots=True)
class SirenAlert:
    """One siren activation to publish: a live alert, a drill or an audible test.

    ``onset`` is when the sirens sound (default ``sent``); ``expires`` defaults to an hour
    after the signal ends. A drill carries its ``exercise`` label (default "演习 EXERCISE");
    a live alert never carries one. Update and Cancel name the messages they replace.
    """

    identifier: str
    sender: CapSender
    sent: datetime
    activation: str
    kind: SirenKind
    signal: SignalDefinition
    areas: tuple[Area, ...]
    msg_type: MsgType = MsgType.ALERT
    references: tuple[Reference, ...] = ()
    onset: datetime | None = None
    expires: datetime | None = None
    exercise: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        check_token("identifier", self.identifier)
        check_aware("sent", self.sent)
        check_text("activation id", self.activation)
        if self.kind is SirenKind.SILENT_TEST:
            raise CapError(
                "a silent test makes no sound, so there is nothing to tell the public: "
                "publish CAP only for audible tests, drills and live alerts"
            )
        if self.kind is SirenKind.LIVE and self.exercise is not None:
            raise CapError(
                "a live alert cannot carry an exercise label; send an exercise as a drill"
            )
        _check_envelope(self.msg_type, self.references, self.areas)
        for name, value in (("onset", self.onset), ("expires", self.expires)):
            if value is not None:
                check_aware(name, value)
        if self.expires is not None and self.expires <= (self.onset or self.sent):
            raise CapError("expires must come after the onset (or sent): the alert would be void")
        for name, text in (("exercise label", self.exercise), ("note", self.note)):
            if text is not None:
                check_text(name, text)


@dataclass(frozen=True, slots=True)
class ProgrammeStep:
    """One signal of a test-day programme and when it sounds."""

    at: datetime
    signal: SignalDefinition

    def __post_init__(self) -> None:
        check_aware("programme step time", self.at)


@dataclass(frozen=True, slots=True)
class TestDayProgramme:
    """A test day's signals (e.g. 18 September 10:00 预先 → 空袭 → 解除) as one Test message."""

    identifier: str
    sender: CapSender
    sent: datetime
    activation: str
    steps: tuple[ProgrammeStep, ...]
    areas: tuple[Area, ...]
    title_zh: str = "防空警报试鸣"
    title_en: str = "Air-defence siren test"
    msg_type: MsgType = MsgType.ALERT
    references: tuple[Reference, ...] = ()
    expires: datetime | None = None
    note: str | None = None

    # Not a pytest test class, whatever its name says.
    __test__ = False

    def __post_init__(self) -> None:
        check_token("identifier", self.identifier)
        check_aware("sent", self.sent)
        check_text("activation id", self.activation)
        check_text("programme title (zh)", self.title_zh)
        check_text("programme title (en)", self.title_en)
        if not self.steps:
            raise CapError("a test-day programme needs at least one step")
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            if after.at < before.at + timedelta(seconds=cycle_s(before.signal)):
                raise CapError(
                    f"programme step {after.signal.name} at {after.at.isoformat()} starts "
                    f"before {before.signal.name} (from {before.at.isoformat()}) has ended"
                )
        _check_envelope(self.msg_type, self.references, self.areas)
        if self.expires is not None and check_aware("expires", self.expires) <= self.steps[0].at:
            raise CapError("expires must come after the programme's first step")
        if self.note is not None:
            check_text("note", self.note)


def _check_envelope(
    msg_type: MsgType, references: tuple[Reference, ...], areas: tuple[Area, ...]
) -> None:
    if msg_type in (MsgType.ACK, MsgType.ERROR):
        raise CapError(f"msgType {msg_type} is an answer to a message, not a siren alert")
    if msg_type is not MsgType.ALERT and not references:
        raise CapError(f"a {msg_type} must reference the message(s) it replaces")
    if msg_type is MsgType.ALERT and references:
        raise CapError("an Alert references nothing; use Update or Cancel to refer back")
    if not areas:
        raise CapError("a public alert needs at least one area (a district or siren post)")


def programme_steps(
    start: datetime, signals: tuple[SignalDefinition, ...], gap: timedelta
) -> tuple[ProgrammeStep, ...]:
    """Steps that sound ``signals`` one after another from ``start``, ``gap`` apart."""
    steps: list[ProgrammeStep] = []
    at = check_aware("programme start", start)
    for signal in signals:
        steps.append(ProgrammeStep(at=at, signal=signal))
        at += timedelta(seconds=cycle_s(signal)) + gap
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class CapRequest:
    """What an upstream CAP message pre-fills in a siren activation request.

    ``signal`` is a suggestion (None when nothing matched); a test-day programme gives its
    steps in ``programme`` instead. The request still needs its approver: nothing here sounds
    a siren. ``headline`` and ``description`` come from the preferred language's info block
    and make the reason text.
    """

    identifier: str
    sender: str
    sent: datetime
    status: CapStatus
    msg_type: MsgType
    kind: SirenKind
    event: str
    signal: str | None
    areas: tuple[Area, ...]
    references: tuple[Reference, ...] = ()
    activation: str | None = None
    exercise: str | None = None
    programme: tuple[tuple[datetime, str], ...] = ()
    expires: datetime | None = None
    headline: str = ""
    description: str = ""
    language: str = ""
    note: str | None = None

    @property
    def reason(self) -> str:
        """The reason text for the activation request: the sender's own words."""
        lead = f"CAP {self.identifier} ({self.sender})"
        words = "\n".join(part for part in (self.headline, self.description) if part)
        return f"{lead}: {words}" if words else lead
