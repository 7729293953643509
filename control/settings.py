"""Control service settings."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from shelterwatch.config import MqttSettings, ServiceSettings
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.errors import ConfigError
from shelterwatch.signing import load_private_key

__all__ = [
    "AlertSettings",
    "CapSettings",
    "ControlSettings",
    "ConversionLevel",
    "ConversionSettings",
    "MaintenanceSettings",
    "PasswordHashing",
    "ScheduleSettings",
    "Severity",
    "SirenSettings",
    "WebhookSettings",
]

Severity = Literal["critical", "major", "minor", "warning"]

# The placeholder of the compose env examples (deploy/compose/*.env.example): a value that
# still holds it was copied and never filled in, and production refuses it.
PLACEHOLDER = "CHANGE_ME"


class PasswordHashing(BaseModel):
    """argon2id cost parameters. Defaults are RFC 9106's low-memory profile (argon2-cffi's
    default). Changing them is safe: each stored hash is upgraded at that user's next login."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: Annotated[int, Field(ge=1, le=20)] = 3
    memory_kib: Annotated[int, Field(ge=64, le=4 * 1024 * 1024)] = 65536
    parallelism: Annotated[int, Field(ge=1, le=64)] = 4


class WebhookSettings(BaseModel):
    """One receiver of alert notifications: signed POSTs (see docs/alerts.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A stable, non-secret identity: pending deliveries name their webhook by it across
    # restarts, and the API shows it (a URL may carry a token in its path, so never the URL).
    name: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
    url: AnyHttpUrl
    # The HMAC key. Give it through the environment: either the whole webhooks list as JSON in
    # SHELTERWATCH_ALERTS__WEBHOOKS, or `secret_env` in the file naming the variable to read.
    secret: SecretStr = SecretStr("")
    secret_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")] | None = None
    # Alerts below this severity are not sent to this webhook.
    min_severity: Severity = "warning"

    @model_validator(mode="before")
    @classmethod
    def _secret_from_env(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("secret_env") and not data.get("secret"):
            name = data["secret_env"]
            value = os.environ.get(str(name), "")
            if not value:
                raise ValueError(f"secret_env: the environment variable {name} is not set")
            data = {**data, "secret": value}
        return data

    @model_validator(mode="after")
    def _secret_is_strong(self) -> Self:
        # An unsigned or guessable signature would let anyone forge an alert to the receiver.
        if len(self.secret.get_secret_value()) < 16:
            raise ValueError(
                f"webhook {self.name}: secret must be at least 16 characters "
                "(set it in the environment; see secret_env)"
            )
        return self


class AlertSettings(BaseModel):
    """Alerts the collector's engine publishes: recording them, and notifying webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # MQTT client id of the alert link: fixed, so the broker queues alerts for it while the
    # control service restarts. It must differ from command_client_id (one session per id).
    # Default: shelterwatch-control-alerts-<hostname>; give each replica its own.
    client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    # An unacknowledged critical alert is notified again this often until it is acknowledged
    # or cleared; 0 notifies once.
    repeat_critical_s: Annotated[float, Field(ge=0)] = 900.0
    # One delivery attempt waits this long for the receiver's answer.
    webhook_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Give up on a delivery after this many attempts (the failure is recorded on the alert).
    webhook_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    # Retries back off exponentially from the first pause to the cap, with jitter.
    webhook_backoff_initial_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    webhook_backoff_max_s: Annotated[float, Field(gt=0, le=86400)] = 600.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [w.name for w in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError("webhooks: each webhook needs its own name")
        if self.webhook_backoff_initial_s > self.webhook_backoff_max_s:
            raise ValueError("webhook_backoff_initial_s must not exceed webhook_backoff_max_s")
        return self


class SirenSettings(BaseModel):
    """Siren activations: the two-person window, the signal catalogue, command lifetimes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A live alert not approved by a second person within this window expires unsent.
    approval_window_s: Annotated[float, Field(ge=1, le=3600)] = 300.0
    # A YAML catalogue of signals (the shape of shelterwatch/signals/builtin.yaml) that adds
    # to the built-in signals or replaces them by name: a city's 灾情警报, another country's.
    signals_file: Path | None = None
    # A siren command stays valid for its signal's length plus this margin (delivery, start).
    ttl_margin_s: Annotated[float, Field(ge=1, le=600)] = 60.0
    # How long a silent test command stays valid (the controller's diagnostic plus delivery).
    silent_test_ttl_s: Annotated[float, Field(ge=1, le=3600)] = 120.0
    # An audible test sounds a short tone (at most short_tone_max_s) on any day, and a full
    # signal only on a test day (MM-DD, in `timezone`): 18 September in most cities.
    short_tone_max_s: Annotated[float, Field(gt=0, le=60)] = 15.0
    test_days: list[
        Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    ] = Field(default_factory=lambda: ["09-18"])
    timezone: str = "Asia/Shanghai"
    # How often approval windows, unanswered sirens and unsent commands are checked.
    sweep_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0

    @model_validator(mode="after")
    def _known_timezone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"sirens.timezone {self.timezone!r} is not a known time zone") from exc
        return self


class ScheduleSettings(BaseModel):
    """Siren schedules (docs/schedules.md): how late a due step may still fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A step found due later than this (the service or its database was down) is recorded
    # as missed instead of sounding late.
    grace_s: Annotated[float, Field(ge=0, le=86400)] = 600.0
    # The runner looks for schedules saved by other replicas at least this often.
    poll_s: Annotated[float, Field(gt=0, le=300)] = 30.0


# CAP's sender: no spaces, commas, '<' or '&' (CAP 1.2, 3.2.1).
_CAP_SENDER = r"^[^\s,<&]{1,255}$"


class CapSettings(BaseModel):
    """CAP 1.2 messages for the public warning channels (docs/cap.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Build and store a CAP message for each live alert, drill, audible test and test-day
    # run. Off: nothing is built (reading upstream CAP still works).
    enabled: bool = True
    # Publish stored messages at QoS 1 on {p}/cap. Off: they are only stored and served by
    # GET /api/v1/cap, for a gateway to the broadcast channels that polls instead.
    publish_mqtt: bool = True
    # CAP's <sender>: the office's address, the same on every replica (receivers match
    # Cancel messages to alerts by it).
    sender: Annotated[str, Field(pattern=_CAP_SENDER)] = "shelterwatch@localhost"
    sender_name: Annotated[str, Field(min_length=1, max_length=200)] = "人民防空办公室"
    sender_name_en: Annotated[str, Field(min_length=1, max_length=200)] = "Civil Air Defence Office"
    # A phone number or address for the public, in every message; none when not set.
    contact: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    # The info block read first from an upstream message with several languages.
    language: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "zh-CN"


class ConversionLevel(BaseModel):
    """One conversion level and the time it allows (docs/conversion.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline_s: Annotated[float, Field(gt=0, le=90 * 86400)]
    title_zh: Annotated[str, Field(min_length=1, max_length=100)]
    title_en: Annotated[str, Field(min_length=1, max_length=100)]


def _default_levels() -> dict[str, ConversionLevel]:
    # Published time limits are 3, 15 and 30 days, but which level each belongs to is not
    # settled in a normative source (docs/conversion.md): a region sets its own.
    return {
        "emergency": ConversionLevel(
            deadline_s=3 * 86400, title_zh="紧急转换", title_en="Emergency"
        ),
        "imminent": ConversionLevel(
            deadline_s=15 * 86400, title_zh="临战转换", title_en="Imminent"
        ),
        "early": ConversionLevel(deadline_s=30 * 86400, title_zh="早期转换", title_en="Early"),
        "drill-30min": ConversionLevel(
            deadline_s=1800, title_zh="演练（30 分钟）", title_en="Drill (30 min)"
        ),
    }


class ConversionSettings(BaseModel):
    """Peacetime-to-wartime conversions (平战转换): plans, levels, timing (docs/conversion.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A directory of plan YAML files (per site or per shelter type) added to the built-in ones.
    plans_dir: Path | None = None
    # Level name → its deadline. An order names one; its deadline is counted from its start.
    levels: dict[Annotated[str, Field(pattern=SLUG_PATTERN)], ConversionLevel] = Field(
        default_factory=_default_levels
    )
    # The countdown warns once this fraction of the time allowed has passed.
    warn_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.75
    # A real order not approved by a second person within this window expires unstarted.
    approval_window_s: Annotated[float, Field(ge=1, le=86400)] = 900.0
    # How a site's gateway is named when an order does not say (the fleet's convention).
    gateway_pattern: Annotated[str, Field(pattern=r"^[a-z0-9_-]*\{site\}[a-z0-9_-]*$")] = (
        "gw-{site}"
    )
    # A reading older than this neither verifies nor contradicts a step. Gateways report a
    # steady value only in their full snapshots (60 s by default): three of them.
    max_reading_age_s: Annotated[float, Field(gt=0, le=3600)] = 180.0
    # A device write stays valid this long; an automated step not confirmed by telemetry
    # this long after its write is written again, at most command_attempts times.
    command_ttl_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    command_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    # How often running orders are advanced and checked against telemetry.
    sweep_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class MaintenanceSettings(BaseModel):
    """Maintenance programmes, evidence, work orders and readiness (docs/maintenance.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A region's programme YAML (the shape of control/maintenance/programmes/zhejiang.yaml);
    # the built-in Zhejiang DBJ33/T1309-2023 programme when not set.
    programme_file: Path | None = None
    # When the programme started to apply: an item never done is due one period after it.
    # Not set: an item with no record at all is overdue (nothing proves it was ever done).
    start_date: datetime.date | None = None
    # How far back telemetry is searched for evidence each time a site is assessed (found
    # evidence is kept in the control database, so older finds stay on record).
    evidence_lookback_days: Annotated[int, Field(ge=1, le=400)] = 62
    # A work order made from an alert or a due item is due this many days later.
    work_order_days: Annotated[int, Field(ge=1, le=365)] = 14
    # A site whose last completed conversion drill is older than this loses readiness.
    drill_max_age_days: Annotated[int, Field(ge=1, le=3660)] = 365
    # How often every replica runs the maintenance sweep (work orders for degradation alerts
    # and due items, telemetry evidence, readiness history in the time-series store); 0 runs
    # it only when POST /api/v1/maintenance/sweep asks.
    sweep_interval_s: Annotated[float, Field(ge=0, le=86400)] = 300.0


class ControlSettings(ServiceSettings):
    # A refused setting is named, never echoed: its value may be a key or hold a password.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    mode: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    store_url: str = "sqlite:///data/shelterwatch.db"
    # SQLite by default; PostgreSQL (postgresql://user:pass@host/db) in production.
    database_url: str = "sqlite:///data/control.db"
    # Apply Alembic migrations at start (one replica at a time; see docs/operations.md).
    migrate_on_start: bool = True

    # -- authentication -------------------------------------------------------------------
    # Bearer tokens and console cookies expire after this long.
    token_ttl_s: Annotated[float, Field(gt=60, le=30 * 86400)] = 12 * 3600.0
    # After this many failed logins in a row an account is locked for lockout_s.
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_s: Annotated[float, Field(gt=0)] = 900.0
    # Login attempts per client address per minute, whatever the username.
    login_rate_per_min: Annotated[int, Field(ge=1, le=10_000)] = 20
    # The console cookie is Secure (HTTPS only) unless in development mode.
    cookie_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "shelterwatch_session"
    password_hashing: PasswordHashing = PasswordHashing()

    # -- commands -------------------------------------------------------------------------
    mqtt: MqttSettings = MqttSettings()
    # Ed25519 private key (base64 of 32 bytes) that signs commands; gateways hold the public
    # key. `shelterwatch keys generate` makes a pair.
    command_private_key: SecretStr = SecretStr("")
    # A command with no final answer this long after its expiry is recorded as timed_out.
    command_grace_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    # MQTT client id of the command link; fixed, so the broker keeps the answers queued for it
    # across restarts. Give each replica its own (default: shelterwatch-control-<hostname>).
    command_client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    # -- alerts ---------------------------------------------------------------------------
    alerts: AlertSettings = AlertSettings()

    # -- sirens ---------------------------------------------------------------------------
    sirens: SirenSettings = SirenSettings()

    # -- schedules ------------------------------------------------------------------------
    schedules: ScheduleSettings = ScheduleSettings()

    # -- CAP ------------------------------------------------------------------------------
    cap: CapSettings = CapSettings()

    # -- conversions ----------------------------------------------------------------------
    conversions: ConversionSettings = ConversionSettings()

    # -- maintenance ----------------------------------------------------------------------
    maintenance: MaintenanceSettings = MaintenanceSettings()

    @field_validator("command_private_key")
    @classmethod
    def _key_loads(cls, value: SecretStr) -> SecretStr:
        # Checked at load, as gateways check their public key: a bad key stops the start,
        # not the first siren command. Empty is refused in production below.
        secret = value.get_secret_value()
        if not secret:
            return value
        if PLACEHOLDER in secret:
            raise ValueError(
                f"command_private_key is still the {PLACEHOLDER} placeholder of the example env "
                "file: set it to the private line of `shelterwatch keys generate`"
            )
        try:
            load_private_key(secret)
        except ConfigError as exc:
            raise ValueError(
                f"command_private_key is not an Ed25519 private key ({exc}); "
                "`shelterwatch keys generate` makes a key pair"
            ) from exc
        return value

    @model_validator(mode="after")
    def _no_default_secret(self) -> Self:
        if self.mode == "production" and not self.command_private_key.get_secret_value():
            raise ValueError(
                "command_private_key must be set in production (SHELTERWATCH_COMMAND_PRIVATE_KEY); "
                "`shelterwatch keys generate` makes a key pair"
            )
        return self

    @model_validator(mode="after")
    def _no_placeholder(self) -> Self:
        if self.mode != "production":
            return self
        values = {
            "database_url (SHELTERWATCH_DATABASE_URL)": self.database_url,
            "store_url (SHELTERWATCH_STORE_URL)": self.store_url,
            "mqtt.password (SHELTERWATCH_MQTT__PASSWORD)": self.mqtt.password or "",
        }
        unfilled = [name for name, value in values.items() if PLACEHOLDER in value]
        if unfilled:
            verb = "still holds" if len(unfilled) == 1 else "still hold"
            raise ValueError(
                f"{', '.join(unfilled)} {verb} a {PLACEHOLDER} placeholder of the example env "
                "files: replace every one before starting in production (docs/deployment.md)"
            )
        return self

    @model_validator(mode="after")
    def _distinct_client_ids(self) -> Self:
        # The broker drops one of two connections that share a client id, back and forth.
        if self.alerts.client_id is not None and self.alerts.client_id == self.command_client_id:
            raise ValueError("alerts.client_id must differ from command_client_id")
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.mode == "production"
