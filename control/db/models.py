"""Tables of the control service. Schema changes go through Alembic (control/migrations).

Times are epoch milliseconds (UTC) in BIGINT columns: the same on SQLite and PostgreSQL, and
exactly what the audit hash covers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
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
    "SirenActivation",
    "SirenActivationEvent",
    "SirenGroup",
    "SirenPost",
    "SirenTarget",
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
    # The command area the user acts in (control/areas); None: every area.
    area: Mapped[str | None] = mapped_column(String(64), nullable=True)

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
    # The SirenOrder of a siren.activate command, as JSON exactly as signed; NULL otherwise.
    siren: Mapped[str | None] = mapped_column(Text, nullable=True)

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


# -- sirens ------------------------------------------------------------------------------------


class SirenPost(Base):
    """A siren post: where it stands, which gateway and device drive it, and its last test."""

    __tablename__ = "siren_posts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    # The device id of the siren controller on that gateway.
    device: Mapped[str] = mapped_column(String(64))
    district: Mapped[str] = mapped_column(String(64), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    # siren (built-in signals) or siren_relay (the gateway times a relay)
    profile: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The last silent test's outcome (test_passed, test_failed, unreachable, ...), its detail
    # and time, kept here so every listing shows it without scanning activations.
    last_test_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_test_detail: Mapped[str] = mapped_column(Text, default="")
    last_test_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_test_activation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # One controller is one siren: two posts on one device would sound as one.
        UniqueConstraint("gateway", "device", name="uq_siren_posts_gateway_device"),
        Index("ix_siren_posts_district", "district"),
    )


class SirenGroup(Base):
    """A named set of sirens: listed members and/or whole districts ("all" is implicit)."""

    __tablename__ = "siren_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # JSON lists of siren ids and of district names.
    members: Mapped[str] = mapped_column(Text, default="[]")
    districts: Mapped[str] = mapped_column(Text, default="[]")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class SirenActivation(Base):
    """One request to act on sirens: a silent or audible test, a drill or a live alert."""

    __tablename__ = "siren_activations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The signal's name and its definition as sent (JSON SignalSpec), frozen at request time:
    # a catalogue edited later does not change what an activation sounded.
    signal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signal_spec: Mapped[str | None] = mapped_column(Text, nullable=True)
    # pending_approval, active, cancelling, then completed, completed_with_failures,
    # cancelled, expired or rejected (see control/sirens/activations.py)
    state: Mapped[str] = mapped_column(String(32))
    # What the state means now, for people ("waiting for approval until ...").
    state_detail: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text)
    # The targets as requested (JSON {"sirens": [...], "groups": [...]}).
    requested_targets: Mapped[str] = mapped_column(Text, default="{}")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_ms: Mapped[int] = mapped_column(BigInteger)
    approve_by_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    dispatched_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Each gateway's command is valid until this time; no answer by it plus the grace is
    # no_answer.
    expires_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancelled_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    schedule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exercise: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    targets: Mapped[list[SirenTarget]] = relationship(
        back_populates="activation", order_by="SirenTarget.siren", cascade="all, delete-orphan"
    )
    events: Mapped[list[SirenActivationEvent]] = relationship(
        back_populates="activation",
        order_by="SirenActivationEvent.id",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        Index("ix_siren_activations_state", "state", "requested_ms"),
        Index("ix_siren_activations_requested", "requested_ms"),
        Index("ix_siren_activations_schedule", "schedule", "requested_ms"),
    )


class SirenTarget(Base):
    """One siren of an activation and what became of it."""

    __tablename__ = "siren_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activation_id: Mapped[str] = mapped_column(
        ForeignKey("siren_activations.id", ondelete="CASCADE")
    )
    # Copied from the post at request time: the report stays true if the post changes later.
    siren: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    district: Mapped[str] = mapped_column(String(64), default="")
    # Why it was flagged when requested: "disabled", "last test failed: ..."; "" if not.
    flags: Mapped[str] = mapped_column(Text, default="")
    # The siren.activate command that carries it (one per gateway and activation).
    command_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # pending, sent, started, then sounded, test_passed, test_failed, unreachable,
    # cancelled, failed or no_answer
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    sent_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    activation: Mapped[SirenActivation] = relationship(back_populates="targets")

    __table_args__ = (
        UniqueConstraint("activation_id", "siren", name="uq_siren_targets_activation_siren"),
        Index("ix_siren_targets_command", "command_id", "device"),
        Index("ix_siren_targets_siren", "siren", "finished_ms"),
    )


class SirenActivationEvent(Base):
    """The history of an activation: requested, approved, sent, answers, cancelled, ended."""

    __tablename__ = "siren_activation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activation_id: Mapped[str] = mapped_column(
        ForeignKey("siren_activations.id", ondelete="CASCADE"), index=True
    )
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")

    activation: Mapped[SirenActivation] = relationship(back_populates="events")
