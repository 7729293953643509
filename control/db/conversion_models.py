"""Conversion orders (平战转换), their shelters, steps and history, and site postures.

An order names one or more shelters (``conversion_targets``). Each shelter runs its own copy
of its plan: the plan's name, version, content hash and full text are frozen on the target
row, so a later edit of the plan never rewrites what an order did. Each step of that plan is
a ``conversion_steps`` row. ``site_postures`` holds each site's declared posture, stored
before it is published on ``{p}/posture/{site}`` (``published_ms`` null: still to publish).

``exercise`` (a drill's label) and ``area`` (the command area that ordered it) are columns
from the start, so command areas and exercises can label and scope orders without a
migration of these tables' meaning.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from control.db.models import Base

__all__ = [
    "ConversionEvent",
    "ConversionOrder",
    "ConversionStep",
    "ConversionTarget",
    "SitePostureRecord",
]


class ConversionOrder(Base):
    __tablename__ = "conversion_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # to_wartime (平转战) or to_peacetime (战转平, the revert)
    direction: Mapped[str] = mapped_column(String(16))
    # drill or real
    kind: Mapped[str] = mapped_column(String(8))
    level: Mapped[str] = mapped_column(String(64))
    # A drill's label ("drill" by default); None for a real order.
    exercise: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The command area that ordered it; None until areas exist.
    area: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # pending_approval, running, completed, cancelled, rejected, expired
    state: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_ms: Mapped[int] = mapped_column(BigInteger)
    approve_by_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    # Counted from the start (approval for a real order, the request for a drill).
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deadline_s: Mapped[float] = mapped_column()
    deadline_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    warn_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    warned: Mapped[bool] = mapped_column(Boolean, default=False)
    missed: Mapped[bool] = mapped_column(Boolean, default=False)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    targets: Mapped[list[ConversionTarget]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="ConversionTarget.site"
    )
    events: Mapped[list[ConversionEvent]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="ConversionEvent.id"
    )

    __table_args__ = (
        Index("ix_conversion_orders_state", "state", "updated_ms"),
        Index("ix_conversion_orders_requested", "requested_ms"),
    )


class ConversionTarget(Base):
    """One shelter of an order, with the plan it runs frozen as it was."""

    __tablename__ = "conversion_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("conversion_orders.id", ondelete="CASCADE"))
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    plan_name: Mapped[str] = mapped_column(String(64))
    plan_version: Mapped[int] = mapped_column(Integer)
    plan_hash: Mapped[str] = mapped_column(String(64))
    plan_json: Mapped[str] = mapped_column(Text)
    # The site's posture before the order: a cancel returns it there.
    posture_before: Mapped[str] = mapped_column(String(16))
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    order: Mapped[ConversionOrder] = relationship(back_populates="targets")
    steps: Mapped[list[ConversionStep]] = relationship(
        back_populates="target", cascade="all, delete-orphan", order_by="ConversionStep.position"
    )

    __table_args__ = (
        UniqueConstraint("order_id", "site", name="uq_conversion_targets_order_site"),
        Index("ix_conversion_targets_site", "site", "finished_ms"),
    )


class ConversionStep(Base):
    __tablename__ = "conversion_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("conversion_targets.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    # automated, verified or manual
    kind: Mapped[str] = mapped_column(String(16))
    # waiting, active, done, regressed, failed, cancelled
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    done_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Who confirmed a manual step, and their note; "telemetry" for the others.
    confirmed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # An automated step's current write: its id, how many were sent, when the last was.
    command_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    commanded_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # How often telemetry contradicted it after it was verified.
    regressions: Mapped[int] = mapped_column(Integer, default=0)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    target: Mapped[ConversionTarget] = relationship(back_populates="steps")

    __table_args__ = (
        UniqueConstraint("target_id", "step", name="uq_conversion_steps_target_step"),
        Index("ix_conversion_steps_command", "command_id"),
    )


class ConversionEvent(Base):
    """The history of an order: requested, approved, each step's start, command, verdict,
    confirmation and regression, warnings, the end."""

    __tablename__ = "conversion_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("conversion_orders.id", ondelete="CASCADE"))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64), default="")
    step: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")

    order: Mapped[ConversionOrder] = relationship(back_populates="events")

    __table_args__ = (Index("ix_conversion_events_order", "order_id", "id"),)


class SitePostureRecord(Base):
    """A site's declared posture; published retained on ``{p}/posture/{site}``."""

    __tablename__ = "site_postures"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    posture: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    exercise: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # Null until the broker took this version; a replica claims it to publish it once.
    published_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_site_postures_unpublished", "published_ms"),)
