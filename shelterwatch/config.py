"""Typed configuration from YAML files plus ``SHELTERWATCH_*`` environment variables.

Each service has a frozen settings model. ``load_settings`` reads the YAML file (if any), lets
environment variables override it (``SHELTERWATCH_MQTT__HOST`` sets ``mqtt.host``), and
validates everything before any socket opens. Errors name the file and the dotted key.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from shelterwatch.contract import DEFAULT_PREFIX
from shelterwatch.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MqttSettings",
    "ServiceSettings",
    "format_validation_error",
    "load_settings",
    "load_yaml_model",
    "read_yaml",
]

ENV_PREFIX = "SHELTERWATCH_"
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound="ServiceSettings")
# The YAML data of the settings being built, handed to the settings source below.
_yaml_data: ContextVar[dict[str, Any]] = ContextVar("_yaml_data", default={})  # noqa: B039


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} invalid setting(s)"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_yaml_model(model: type[M], path: Path, what: str = "file") -> M:
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{what} {path}")) from exc


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    # 5 = MQTT 5 (receive maximum, session expiry, shared subscriptions); 4 = MQTT 3.1.1.
    protocol: Literal[4, 5] = 5
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    # Upper bound on QoS 1 publishes awaiting PUBACK: paho loses messages past 65,535.
    max_inflight: Annotated[int, Field(ge=1, le=10000)] = 100
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class ServiceSettings(BaseSettings):
    """Base of each service's settings: YAML below, environment variables on top."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls, _yaml_data.get()))


def load_settings(model: type[S], path: Path | None = None, **overrides: Any) -> S:
    """Build settings from ``path`` (YAML), the environment, and explicit overrides."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "settings"
    token = _yaml_data.set(data)
    try:
        return model(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, f"{source} (with {ENV_PREFIX}* environment)")
        ) from exc
    except SettingsError as exc:
        # A malformed value in a SHELTERWATCH_* variable (for example bad JSON).
        raise ConfigError(f"{ENV_PREFIX}* environment: {exc}") from exc
    finally:
        _yaml_data.reset(token)
