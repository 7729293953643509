"""Tables of siren schedules: the schedules, and one row per step of each run they make.

Times are epoch milliseconds (UTC), as in control/db/models.py. A run is named by its start
(``run_ts``); ``schedule_runs`` has one row per (schedule, run, step), and its unique key is
what makes each step fire once however many control replicas watch the clock: the replica
whose insert commits fires, the others see the key taken.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.db.models import Base

__all__ = ["ScheduleRecord", "ScheduleRun"]


class ScheduleRecord(Base):
    """A schedule as written: its rule, targets and programme (JSON), plus who changed it."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(500))
    # The local day the rule counts from (ISO date).
    starts: Mapped[str] = mapped_column(String(10))
    # JSON lists: siren ids, group names, and the programme's steps as written.
    sirens: Mapped[str] = mapped_column(Text, default="[]")
    groups: Mapped[str] = mapped_column(Text, default="[]")
    programme: Mapped[str] = mapped_column(Text, default="[]")
    template: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Steps due before this are none of the schedule's business (neither fired nor missed):
    # set when it is created, enabled, or its timing changes.
    active_from_ms: Mapped[int] = mapped_column(BigInteger)
    # Bumped by every change; an update writes only over the revision it read.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(128))


class ScheduleRun(Base):
    """One step of one run: claimed, then fired, failed or missed. Kept when the schedule is
    deleted (the report outlives it), so it names the schedule by id and by name."""

    __tablename__ = "schedule_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(Integer)
    schedule: Mapped[str] = mapped_column(String(64))
    run_ts: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(Integer)
    # When the step was due.
    due_ts: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # claimed (being fired now), fired, failed, missed
    state: Mapped[str] = mapped_column(String(16))
    activation: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # The replica that claimed it (host-pid), for the operator chasing a stuck claim.
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_ts: Mapped[int] = mapped_column(BigInteger)
    updated_ts: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("schedule_id", "run_ts", "step", name="uq_schedule_runs_step"),
        Index("ix_schedule_runs_schedule_run", "schedule", "run_ts"),
    )
