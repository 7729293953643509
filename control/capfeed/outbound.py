"""Building the CAP messages of activations and test-day runs from the control database.

Pure of the network: each function reads what it needs and returns the message to store
(``Outgoing``), or None when the activation publishes nothing (a silent test; an audible
test a schedule started, which its run's programme message covers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from control.cap import (
    CapSender,
    MsgType,
    Reference,
    SirenAlert,
    TestDayProgramme,
    build_alert,
)
from control.cap.mapping import STATUS_OF_KIND
from control.cap.model import ProgrammeStep
from control.capfeed.areas import areas_of
from control.db import CapMessage, Database, SirenActivation, SirenPost
from control.schedules.ports import ProgrammeRun
from shelterwatch.contract import SignalSpec, SirenKind
from shelterwatch.signals import SignalDefinition

__all__ = ["Outgoing", "alert_of", "cancel_of", "identifier_of", "programme_of"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A built message and the columns it is stored with."""

    identifier: str
    msg_type: MsgType
    status: str
    sent: datetime
    xml: bytes
    references: str = ""
    activation: str | None = None
    schedule: str | None = None
    run_ts: int | None = None

    def values(self, sender: str, actor: str) -> dict[str, object]:
        return {
            "direction": "out",
            "identifier": self.identifier,
            "sender": sender,
            "msg_type": self.msg_type.value,
            "status": self.status,
            "activation": self.activation,
            "schedule": self.schedule,
            "run_ts": self.run_ts,
            "references": self.references,
            "sent_ms": int(self.sent.timestamp() * 1000),
            "xml": self.xml.decode("utf-8"),
            "actor": actor[:128],
        }


def identifier_of(activation: str, msg_type: MsgType) -> str:
    """Derived, not random: the same message built twice (a retry, a second replica) is the
    same row, stored once."""
    return f"SW-{activation}" if msg_type is MsgType.ALERT else f"SW-{activation}-{msg_type}"


def _signal(
    activation: SirenActivation, catalogue: Mapping[str, SignalDefinition]
) -> SignalDefinition | None:
    if activation.signal_spec is None:
        return None
    # The pattern as it was sent (frozen at request time); the names from the catalogue.
    spec = SignalSpec.model_validate_json(activation.signal_spec)
    known = catalogue.get(spec.name)
    return SignalDefinition(
        name=spec.name,
        title_zh=known.title_zh if known else spec.name,
        title_en=known.title_en if known else spec.name,
        segments=spec.segments,
        repeat=spec.repeat,
        tone=spec.tone,
        number=spec.number,
    )


async def _posts(db: Database, ids: list[str]) -> list[SirenPost]:
    async with db.session() as s:
        return list(await s.scalars(select(SirenPost).where(SirenPost.id.in_(ids))))


def _publishes(activation: SirenActivation) -> bool:
    kind = SirenKind(activation.kind)
    if kind is SirenKind.SILENT_TEST:
        return False  # nothing sounds, nothing to tell the public
    # A scheduled audible test is one step of a programme: its run's Test message covers it.
    return not (kind is SirenKind.AUDIBLE_TEST and activation.schedule is not None)


async def alert_of(
    db: Database,
    activation: SirenActivation,
    sender: CapSender,
    catalogue: Mapping[str, SignalDefinition],
    zone: ZoneInfo,
) -> Outgoing | None:
    """The Alert of a dispatched activation (Actual, Exercise or Test by its kind)."""
    signal = _signal(activation, catalogue)
    if signal is None or not _publishes(activation):
        return None
    kind = SirenKind(activation.kind)
    sent = datetime.now(zone).replace(microsecond=0)
    message = SirenAlert(
        identifier=identifier_of(activation.id, MsgType.ALERT),
        sender=sender,
        sent=sent,
        activation=activation.id,
        kind=kind,
        signal=signal,
        areas=areas_of(await _posts(db, [t.siren for t in activation.targets])),
        exercise=activation.exercise if kind is not SirenKind.LIVE else None,
    )
    return Outgoing(
        identifier=message.identifier,
        msg_type=MsgType.ALERT,
        status=STATUS_OF_KIND[kind].value,
        sent=sent,
        xml=build_alert(message),
        activation=activation.id,
    )


def cancel_of(
    activation: SirenActivation,
    alert: CapMessage,
    areas_from: tuple[SirenPost, ...],
    sender: CapSender,
    catalogue: Mapping[str, SignalDefinition],
    zone: ZoneInfo,
) -> Outgoing | None:
    """The Cancel of an activation whose Alert was stored: it references that Alert."""
    signal = _signal(activation, catalogue)
    if signal is None:
        return None
    kind = SirenKind(activation.kind)
    sent = datetime.now(zone).replace(microsecond=0)
    original = Reference(
        sender=alert.sender,
        identifier=alert.identifier,
        sent=datetime.fromtimestamp(alert.sent_ms / 1000, UTC).astimezone(zone),
    )
    message = SirenAlert(
        identifier=identifier_of(activation.id, MsgType.CANCEL),
        sender=sender,
        sent=sent,
        activation=activation.id,
        kind=kind,
        signal=signal,
        areas=areas_of(areas_from),
        msg_type=MsgType.CANCEL,
        references=(original,),
        exercise=activation.exercise if kind is not SirenKind.LIVE else None,
    )
    xml = build_alert(message)
    triple = f"{original.sender},{original.identifier},{original.sent.isoformat()}"
    return Outgoing(
        identifier=message.identifier,
        msg_type=MsgType.CANCEL,
        status=STATUS_OF_KIND[kind].value,
        sent=sent,
        xml=xml,
        references=triple,
        activation=activation.id,
    )


def programme_of(
    run: ProgrammeRun,
    posts: list[SirenPost],
    sender: CapSender,
    catalogue: Mapping[str, SignalDefinition],
) -> Outgoing | None:
    """The one Test message of a test-day run, listing each audible step and its time."""
    steps = tuple(
        ProgrammeStep(at=at, signal=catalogue[name]) for at, name in run.steps if name in catalogue
    )
    if not steps:
        return None
    zone = run.run.tzinfo or UTC
    sent = datetime.now(zone).replace(microsecond=0)
    run_ts = int(run.run.timestamp() * 1000)
    identifier = f"SW-{run.schedule}-{run.run.strftime('%Y%m%dT%H%M')}"
    message = TestDayProgramme(
        identifier=identifier,
        sender=sender,
        sent=sent,
        activation=run.activation,
        steps=steps,
        areas=areas_of(posts),
        note=f"schedule {run.schedule}: {run.title}",
    )
    return Outgoing(
        identifier=identifier,
        msg_type=MsgType.ALERT,
        status="Test",
        sent=sent,
        xml=build_alert(message),
        schedule=run.schedule,
        run_ts=run_ts,
    )
