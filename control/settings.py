"""Control service settings."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from shelterwatch.config import MqttSettings, ServiceSettings

__all__ = ["ControlSettings", "PasswordHashing"]


class PasswordHashing(BaseModel):
    """argon2id cost parameters. Defaults are RFC 9106's low-memory profile (argon2-cffi's
    default). Changing them is safe: each stored hash is upgraded at that user's next login."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: Annotated[int, Field(ge=1, le=20)] = 3
    memory_kib: Annotated[int, Field(ge=64, le=4 * 1024 * 1024)] = 65536
    parallelism: Annotated[int, Field(ge=1, le=64)] = 4


class ControlSettings(ServiceSettings):
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

    @model_validator(mode="after")
    def _no_default_secret(self) -> Self:
        if self.mode == "production" and not self.command_private_key.get_secret_value():
            raise ValueError(
                "command_private_key must be set in production (SHELTERWATCH_COMMAND_PRIVATE_KEY); "
                "`shelterwatch keys generate` makes a key pair"
            )
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.mode == "production"
