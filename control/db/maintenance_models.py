"""Maintenance records (done by telemetry or by a person) and work orders.

``maintenance_records`` keeps every completion of a programme item at a site: the telemetry
evidence the service found (``source`` telemetry, one row per device and moment, so finding
it again changes nothing) and each person's confirmation with a note (``source`` manual).
Telemetry evidence is copied here when found, so an inspection report still shows it after
the time-series store has dropped the samples.

``work_orders`` are the tasks a maintenance team works through. ``origin`` says what made
one: ``alert:<id>`` (a degradation alert), ``item:<site>:<item>:<due_ms>`` (an item coming
due) or null (made by hand); it is unique, so an alert or a due date makes one order at most.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.db.models import Base

__all__ = ["MaintenanceRecord", "WorkOrder"]


class MaintenanceRecord(Base):
    __tablename__ = "maintenance_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    item: Mapped[str] = mapped_column(String(64))
    # telemetry or manual
    source: Mapped[str] = mapped_column(String(16))
    # The device whose telemetry shows it; "" for a person's confirmation.
    device: Mapped[str] = mapped_column(String(64), default="")
    done_ms: Mapped[int] = mapped_column(BigInteger)
    # Who confirmed it ("telemetry" for the service's findings) and their note.
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint(
            "site", "item", "source", "device", "done_ms", name="uq_maintenance_records_identity"
        ),
        Index("ix_maintenance_records_site", "site", "done_ms"),
    )


class WorkOrder(Base):
    __tablename__ = "work_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    item: Mapped[str | None] = mapped_column(String(64), nullable=True)
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    origin: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    assignee: Mapped[str] = mapped_column(String(128), default="")
    due_ms: Mapped[int] = mapped_column(BigInteger)
    # open, in_progress, done, cancelled
    state: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closing_note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_work_orders_state", "state", "due_ms"),
        Index("ix_work_orders_site", "site", "state"),
    )
