"""The CAP feed as the API shows it (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from control.cap import MAX_CAP_BYTES
from control.db import CapMessage
from control.sirens.models import ActivationPublic, Preview, Slug
from shelterwatch.contract import SirenKind

__all__ = ["CapMessagePublic", "CapPrefill", "CapUpload", "SirenMatch", "UpstreamCap", "public"]


class CapMessagePublic(BaseModel):
    identifier: str
    # out: published by this service; in: read from an upstream authority
    direction: Literal["out", "in"]
    sender: str
    # Alert, Update or Cancel
    msg_type: str
    # Actual, Exercise or Test
    status: str
    activation: str | None
    schedule: str | None
    run_ts: int | None
    # What an Update or Cancel refers to: "sender,identifier,sent" triples, space-separated.
    references: str
    sent: int
    created: int
    # When the broker took it (outbound); null while it waits for the broker.
    published: int | None
    topic: str | None
    actor: str


def public(row: CapMessage) -> CapMessagePublic:
    return CapMessagePublic(
        identifier=row.identifier,
        direction="in" if row.direction == "in" else "out",
        sender=row.sender,
        msg_type=row.msg_type,
        status=row.status,
        activation=row.activation,
        schedule=row.schedule,
        run_ts=row.run_ts,
        references=row.references,
        sent=row.sent_ms,
        created=row.created_ms,
        published=row.published_ms,
        topic=row.topic,
        actor=row.actor,
    )


class CapUpload(BaseModel):
    """An upstream authority's CAP 1.2 message, and the signal to sound if it names none."""

    model_config = ConfigDict(extra="forbid")

    # The whole <alert> document, UTF-8 (at most 256 KiB).
    xml: Annotated[str, Field(min_length=1, max_length=MAX_CAP_BYTES)]
    # Overrides the signal read from the message (its event text or shelterwatch:signal).
    signal: Slug | None = None


class UpstreamCap(BaseModel):
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    event: str
    headline: str
    areas: list[str]


class SirenMatch(BaseModel):
    siren: str
    district: str
    # The areaDesc of the CAP area that reaches it.
    area: str
    # circle: its coverage meets a CAP circle; polygon: it meets a CAP polygon;
    # district: its district is named by the areaDesc.
    by: Literal["circle", "polygon", "district"]


class CapPrefill(BaseModel):
    """What an upstream message asks for, as an activation request: created (202) and, for a
    live alert, waiting for its approver; or only previewed (``dry_run``, 200)."""

    dry_run: bool
    kind: SirenKind
    signal: str | None
    exercise: str | None
    reason: str
    upstream: UpstreamCap
    matches: list[SirenMatch]
    targets: list[str]
    needs_approval: bool
    # dry run: every target as a request would reach it
    preview: Preview | None = None
    # not a dry run: the activation request made
    activation: ActivationPublic | None = None
