"""Tables of the control service. Schema changes go through Alembic (control/migrations).

Times are epoch milliseconds (UTC) in BIGINT columns: the same on SQLite and PostgreSQL, and
exactly what the audit hash covers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AlertEvent",
    "AlertNotification",
    "AlertRecord",
    "ApiToken",
    "AuditEntry",
    "Base",
    "CommandEvent",
    "CommandRecord",
    "User",
]

# Stable constraint names, so migrations are the same on every backend.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    # argon2id, in the encoded form argon2-cffi produces (parameters and salt included).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    password_changed_ms: Mapped[int] = mapped_column(BigInteger)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """A bearer token (and the console cookie): only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship(back_populates="tokens")


class AuditEntry(Base):
    """One append-only row of the audit trail, chained to the one before by its hash."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(256), default="")
    # Canonical JSON (sorted keys, no whitespace), exactly as hashed.
    params: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str] = mapped_column(String(256), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CommandRecord(Base):
    """A command sent to a gateway, and its latest known outcome."""

    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, default="{}")
    actor: Mapped[str] = mapped_column(String(128))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    # pending (sent, no answer yet), accepted, rejected, running, succeeded, failed, expired,
    # timed_out (no final answer before the expiry plus a grace period)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    events: Mapped[list[CommandEvent]] = relationship(
        back_populates="command", order_by="CommandEvent.id"
    )

    __table_args__ = (Index("ix_commands_gateway_ts", "gateway", "ts_ms"),)


class CommandEvent(Base):
    """Every answer a gateway gave to a command, in arrival order."""

    __tablename__ = "command_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    ts_ms: Mapped[int] = mapped_column(BigInteger)

    command: Mapped[CommandRecord] = relationship(back_populates="events")


# -- alerts ------------------------------------------------------------------------------------


class AlertRecord(Base):
    """One alert of the collector's engine: a (site, rule, device) raised at ``raised_ts``,
    with its people's acknowledgement and its clearing."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32), default="")
    point: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    # The reading as JSON (a number, boolean or string keeps its type), or NULL.
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    predicted_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    raised_ts: Mapped[int] = mapped_column(BigInteger)
    cleared_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # raised, acknowledged or cleared; a cleared alert that someone acknowledged keeps acked_by.
    state: Mapped[str] = mapped_column(String(16))
    acked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    acked_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ack_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When notifications were last queued for it (the repeat of critical alerts counts from it).
    last_notified_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_ts: Mapped[int] = mapped_column(BigInteger)

    events: Mapped[list[AlertEvent]] = relationship(
        back_populates="alert", order_by="AlertEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # A retained raise delivered again (reconnect, restart, a second replica) is the same
        # alert, not a new one.
        UniqueConstraint("site", "rule", "device", "raised_ts", name="uq_alerts_identity"),
        Index("ix_alerts_state_raised", "state", "raised_ts"),
    )


class AlertEvent(Base):
    """The history of an alert: raised, updated, acknowledged, cleared, notification failures."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    value: Mapped[str | None] = mapped_column(Text, nullable=True)

    alert: Mapped[AlertRecord] = relationship(back_populates="events")


class AlertNotification(Base):
    """One webhook delivery, kept in the database until it is delivered or given up, so a
    restart of the control service loses no pending notification."""

    __tablename__ = "alert_notifications"

    # Random, and in the signed body: receivers drop a delivery they have seen (retries are
    # at least once).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    webhook: Mapped[str] = mapped_column(String(64))
    # raised, repeat, acknowledged, cleared
    event: Mapped[str] = mapped_column(String(16))
    # The exact JSON body, fixed when queued so every attempt sends the same bytes.
    body: Mapped[str] = mapped_column(Text)
    # pending, delivered, failed
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ts: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_ts: Mapped[int] = mapped_column(BigInteger)
    updated_ts: Mapped[int] = mapped_column(BigInteger)
    delivered_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_alert_notifications_due", "state", "next_attempt_ts"),)
