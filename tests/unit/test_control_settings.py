"""The control service's settings refuse secrets that cannot work: a signing key that is not an
Ed25519 key (at load, not at the first command), and, in production, any secret still holding
the compose env examples' CHANGE_ME placeholder. The error names the setting, never its value.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from control import ControlSettings
from shelterwatch.config import ENV_PREFIX, load_settings
from shelterwatch.errors import ConfigError
from shelterwatch.signing import generate_keypair

PRIVATE = generate_keypair()[0]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX.upper()):
            monkeypatch.delenv(name)


def settings(**kw: Any) -> ControlSettings:
    values: dict[str, Any] = {"command_private_key": SecretStr(PRIVATE)}
    return ControlSettings(**(values | kw))


def refusal(**kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        settings(**kw)
    return str(info.value)


def test_a_real_key_loads() -> None:
    assert settings().command_private_key.get_secret_value() == PRIVATE


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("not a key at all", "not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), "must be 32 bytes"),
        (generate_keypair()[0][:-4], "must be 32 bytes"),  # a key cut short
    ],
)
@pytest.mark.parametrize("mode", ["production", "development"])
def test_a_key_that_is_no_ed25519_key_is_refused_at_load(key: str, why: str, mode: str) -> None:
    text = refusal(mode=mode, command_private_key=SecretStr(key))
    assert "command_private_key" in text and why in text
    assert "shelterwatch keys generate" in text
    assert key not in text  # named, never echoed


def test_an_empty_key_is_refused_in_production_only() -> None:
    text = refusal(command_private_key=SecretStr(""))
    assert "command_private_key must be set in production" in text
    assert settings(mode="development", command_private_key=SecretStr("")).mode == "development"


@pytest.mark.parametrize("mode", ["production", "development"])
def test_the_placeholder_key_is_refused_and_says_how_to_make_one(mode: str) -> None:
    text = refusal(mode=mode, command_private_key=SecretStr("CHANGE_ME_COMMAND_PRIVATE_KEY"))
    assert "command_private_key is still the CHANGE_ME placeholder" in text
    assert "shelterwatch keys generate" in text


PLACEHOLDERS: list[tuple[str, dict[str, Any]]] = [
    (
        "database_url",
        {"database_url": "postgresql://shelterwatch:CHANGE_ME_POSTGRES_PASSWORD@pg:5432/sw"},
    ),
    (
        "store_url",
        {"store_url": "influxdb://sw:CHANGE_ME_INFLUX_RW_PASSWORD@influxdb:8086/sw?create=false"},
    ),
    ("mqtt.password", {"mqtt": {"username": "control", "password": "CHANGE_ME"}}),
]


@pytest.mark.parametrize(("name", "values"), PLACEHOLDERS, ids=[n for n, _v in PLACEHOLDERS])
def test_production_refuses_a_placeholder_naming_the_setting(
    name: str, values: dict[str, Any]
) -> None:
    text = refusal(**values)
    assert f"{name} (SHELTERWATCH_" in text and "still holds a CHANGE_ME placeholder" in text
    assert "PASSWORD@" not in text and "CHANGE_ME_" not in text  # the value is not echoed
    # Development (the demo, a laptop) may run with whatever it is given.
    assert settings(mode="development", **values).mode == "development"


def test_every_unfilled_setting_is_named_at_once() -> None:
    merged: dict[str, Any] = {}
    for _name, values in PLACEHOLDERS:
        merged |= values
    text = refusal(**merged)
    assert "database_url (SHELTERWATCH_DATABASE_URL), store_url (SHELTERWATCH_STORE_URL), " in text
    assert "mqtt.password (SHELTERWATCH_MQTT__PASSWORD) still hold a" in text


def test_the_loader_names_the_environment_variable_that_holds_a_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an operator sees who copied control.env.example and forgot one line.
    monkeypatch.setenv(f"{ENV_PREFIX}COMMAND_PRIVATE_KEY", PRIVATE)
    monkeypatch.setenv(
        f"{ENV_PREFIX}DATABASE_URL", "postgresql://sw:CHANGE_ME_POSTGRES_PASSWORD@pg/sw"
    )
    with pytest.raises(ConfigError, match=r"database_url \(SHELTERWATCH_DATABASE_URL\)") as info:
        load_settings(ControlSettings, store_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert "CHANGE_ME_POSTGRES_PASSWORD" not in str(info.value)
    monkeypatch.setenv(f"{ENV_PREFIX}COMMAND_PRIVATE_KEY", "CHANGE_ME_COMMAND_PRIVATE_KEY")
    with pytest.raises(ConfigError, match="command_private_key"):
        load_settings(ControlSettings, store_url=f"sqlite:///{tmp_path / 'x.db'}")


def test_a_real_password_containing_no_placeholder_is_taken() -> None:
    s = settings(
        database_url="postgresql://shelterwatch:9f1c2e@pg:5432/sw",
        mqtt={"username": "control", "password": "change-me-not"},
    )
    assert s.mqtt.password == "change-me-not"
