"""Settings from YAML plus SHELTERWATCH_* environment variables, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shelterwatch.config import MqttSettings, ServiceSettings, load_settings, load_yaml_model
from shelterwatch.contract import DEFAULT_PREFIX
from shelterwatch.errors import ConfigError


class PollSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_s: float = Field(default=60.0, gt=0)
    devices: list[str] = Field(default_factory=list)


class DemoSettings(ServiceSettings):
    gateway_id: str = "gw-shelter-01"
    site: str = "shelter-01"
    mqtt: MqttSettings = MqttSettings()
    poll: PollSettings = PollSettings()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SHELTERWATCH_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


CONFIG = """\
gateway_id: gw-shelter-07
mqtt:
  host: broker.shelters.local
  port: 8883
  username: gw-shelter-07
poll:
  snapshot_s: 30
"""


def test_defaults_without_a_file() -> None:
    settings = load_settings(DemoSettings)
    assert settings.gateway_id == "gw-shelter-01"
    assert settings.mqtt == MqttSettings()
    assert settings.mqtt.prefix == DEFAULT_PREFIX


def test_yaml_file(tmp_path: Path) -> None:
    settings = load_settings(DemoSettings, write(tmp_path, CONFIG))
    assert settings.gateway_id == "gw-shelter-07"
    assert settings.site == "shelter-01"  # default kept
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker.shelters.local", 8883)
    assert settings.mqtt.username == "gw-shelter-07"
    assert settings.mqtt.keepalive_s == 30
    assert settings.poll.snapshot_s == 30.0


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(DemoSettings, write(tmp_path, "# nothing\n")) == DemoSettings()


def test_env_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELTERWATCH_GATEWAY_ID", "gw-from-env")
    monkeypatch.setenv("SHELTERWATCH_MQTT__PORT", "1884")
    monkeypatch.setenv("SHELTERWATCH_MQTT__PASSWORD", "s3cret")
    settings = load_settings(DemoSettings, write(tmp_path, CONFIG))
    assert settings.gateway_id == "gw-from-env"
    assert settings.mqtt.port == 1884
    assert settings.mqtt.password == "s3cret"
    # Nested keys merge: the YAML's other mqtt keys stay.
    assert settings.mqtt.host == "broker.shelters.local"
    assert settings.mqtt.username == "gw-shelter-07"
    assert settings.poll.snapshot_s == 30.0


def test_env_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELTERWATCH_MQTT__HOST", "10.0.0.5")
    monkeypatch.setenv("SHELTERWATCH_POLL__DEVICES", '["door", "vent"]')
    settings = load_settings(DemoSettings)
    assert settings.mqtt.host == "10.0.0.5"
    assert settings.poll.devices == ["door", "vent"]


def test_explicit_overrides_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELTERWATCH_SITE", "from-env")
    settings = load_settings(DemoSettings, write(tmp_path, "site: from-yaml\n"), site="explicit")
    assert settings.site == "explicit"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(DemoSettings, write(tmp_path, CONFIG))
    with pytest.raises(ValidationError):
        settings.site = "elsewhere"


def _error(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(DemoSettings, path)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("mqtt:\n  port: 70000\n", "mqtt.port"),
        ("mqtt:\n  port: not-a-port\n", "mqtt.port"),
        ("mqtt:\n  keepalive_s: 1\n", "mqtt.keepalive_s"),
        ("poll:\n  snapshot_s: -1\n", "poll.snapshot_s"),
        ("poll:\n  devices: door\n", "poll.devices"),
        ("mqtt: 5\n", "mqtt"),
    ],
)
def test_bad_value_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    message = _error(path)
    assert str(path) in message
    assert f"  {key}: " in message, message


def test_bad_env_value_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELTERWATCH_MQTT__PORT", "0")
    path = write(tmp_path, CONFIG)
    message = _error(path)
    assert str(path) in message
    assert "SHELTERWATCH_* environment" in message
    assert "  mqtt.port: " in message


def test_every_bad_key_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: 0\n  keepalive_s: 1\nsite: [a]\n")
    message = _error(path)
    assert "3 invalid setting(s)" in message
    for key in ("mqtt.port", "mqtt.keepalive_s", "site"):
        assert f"  {key}: " in message


@pytest.mark.parametrize(
    ("text", "key"),
    [("gatway_id: gw-1\n", "gatway_id"), ("mqtt:\n  hots: broker\n", "mqtt.hots")],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    message = _error(path)
    assert str(path) in message
    assert f"  {key}: Extra inputs are not permitted" in message


def test_unknown_nested_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELTERWATCH_MQTT__HOTS", "broker")
    assert "  mqtt.hots: Extra inputs are not permitted" in _error()


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  host: [broker\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = _error(path)
    assert message.startswith(f"{path}: the top level must be a mapping")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    message = _error(path)
    assert message.startswith(f"{path}: cannot read")


def test_load_yaml_model_names_what_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "snapshot_s: 0\nextra: 1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_model(PollSettings, path, what="poll file")
    message = str(info.value)
    assert message.startswith(f"poll file {path}: 2 invalid setting(s)")
    assert "  snapshot_s: " in message
    assert "  extra: " in message


def test_yaml_does_not_leak_between_loads(tmp_path: Path) -> None:
    load_settings(DemoSettings, write(tmp_path, CONFIG))
    assert DemoSettings().gateway_id == "gw-shelter-01"
    assert load_settings(DemoSettings).mqtt.port == 1883
