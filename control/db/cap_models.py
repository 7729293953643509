"""The CAP 1.2 messages the control service published or read (docs/cap.md).

One row per message, stored before it is published: the database, not the process, knows
which messages still wait for the broker (``published_ms`` is null), so a message built while
the broker is down survives a restart and is published by whichever replica is connected.
A replica takes a message by setting ``claimed_by`` and ``claim_until_ms`` in one conditional
UPDATE; the others leave it alone until that claim lapses.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.db.models import Base

__all__ = ["CapMessage"]


class CapMessage(Base):
    __tablename__ = "cap_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # out: built here and published on {p}/cap; in: read from an upstream authority.
    direction: Mapped[str] = mapped_column(String(8))
    identifier: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    # CAP's msgType (Alert, Update, Cancel) and status (Actual, Exercise, Test).
    msg_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # The activation it describes (out) or pre-filled (in); null for a test-day programme.
    activation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The schedule run a test-day programme message describes.
    schedule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # CAP's references (sender,identifier,sent triples), for Update and Cancel.
    references: Mapped[str] = mapped_column(Text, default="")
    sent_ms: Mapped[int] = mapped_column(BigInteger)
    # The document exactly as published (or received), UTF-8.
    xml: Mapped[str] = mapped_column(Text)
    # Who caused it: the approver, the requester, schedule:<name>, or who uploaded it.
    actor: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    published_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    topic: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        # CAP names a message by (sender, identifier): the same upstream message twice, or
        # the same outbound message built on two replicas, is one row.
        UniqueConstraint("direction", "sender", "identifier", name="uq_cap_messages_message"),
        Index("ix_cap_messages_activation", "activation", "created_ms"),
        Index("ix_cap_messages_created", "created_ms"),
        Index("ix_cap_messages_unpublished", "direction", "published_ms"),
    )
