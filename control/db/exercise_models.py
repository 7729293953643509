"""Exercises (演习): the exercise, the situations injected into it, and the alerts it labels.

``exercises.id`` is the label every command, order, CAP message and report of the exercise
carries; it is a primary key, and no route changes it. ``exercise_situations`` holds each
injected situation with the audit row that injected it (``inject_seq``), so its timings are
measured from that row's time. ``exercise_alerts`` labels the alerts the exercise caused:
the alerts table stays as the collector's engine fills it, and the label lives here.
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
from sqlalchemy.orm import Mapped, mapped_column

from control.db.models import Base

__all__ = ["Exercise", "ExerciseAlert", "ExerciseSituation"]


class Exercise(Base):
    __tablename__ = "exercises"

    # A slug of at most 64 characters: the label fits every column that carries one.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[str] = mapped_column(Text, default="")
    # The participating area codes as a JSON list, sorted.
    areas: Mapped[str] = mapped_column(Text)
    director: Mapped[str] = mapped_column(String(64))
    # planned, running, ended
    state: Mapped[str] = mapped_column(String(16))
    planned_start_ms: Mapped[int] = mapped_column(BigInteger)
    planned_end_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_exercises_state", "state"),)


class ExerciseSituation(Base):
    __tablename__ = "exercise_situations"

    # "{exercise}.{number}": readable in the audit trail and in the simulator's log.
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # A kind of the situation library (control/exercises/library/situations.yaml).
    kind: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    # The participating area the site lies in: the area whose response is timed.
    area: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64), default="")
    device: Mapped[str] = mapped_column(String(64), default="")
    # The siren post of a siren situation; "" otherwise.
    siren: Mapped[str] = mapped_column(String(64), default="")
    # The simulator fault that plays it, and its options as JSON.
    fault: Mapped[str] = mapped_column(String(64))
    options: Mapped[str] = mapped_column(Text, default="{}")
    # "chosen", or "random:<seed>:<draw>" for one drawn at random.
    origin: Mapped[str] = mapped_column(String(64))
    injected_by: Mapped[str] = mapped_column(String(128))
    injected_ms: Mapped[int] = mapped_column(BigInteger)
    inject_seq: Mapped[int] = mapped_column(BigInteger)
    # Whether the broker took the inject for the simulator, and what went wrong if not.
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    publish_detail: Mapped[str] = mapped_column(Text, default="")
    repaired_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    repaired_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    repair_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("exercise_id", "number", name="uq_exercise_situations_number"),
        Index("ix_exercise_situations_site", "site", "injected_ms"),
    )


class ExerciseAlert(Base):
    """An alert raised at a participating site during the exercise, matched to a situation."""

    __tablename__ = "exercise_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    situation_id: Mapped[str] = mapped_column(
        ForeignKey("exercise_situations.id", ondelete="CASCADE")
    )
    alert_id: Mapped[int] = mapped_column(Integer)
    labelled_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # An alert belongs to one situation at most: labelled once, never relabelled.
        UniqueConstraint("alert_id", name="uq_exercise_alerts_alert_id"),
        Index("ix_exercise_alerts_situation", "situation_id"),
    )
