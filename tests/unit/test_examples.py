"""The example settings in deploy/examples validate, and say what the operations guide says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from collector import CollectorSettings
from control import ControlSettings
from gateway import GatewaySettings
from shelterwatch.cli.services import SimSettings
from shelterwatch.config import load_settings
from shelterwatch.errors import ConfigError
from shelterwatch.profiles import load_profile
from shelterwatch.signing import generate_keypair

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples are checked as written, whatever this machine's environment holds.
    for name in list(os.environ):
        if name.startswith("SHELTERWATCH_"):
            monkeypatch.delenv(name)


def test_every_example_is_tested() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert names == {"sim.yaml", "gateway.yaml", "collector.yaml", "control.yaml"}


def test_sim_example() -> None:
    s = load_settings(SimSettings, EXAMPLES / "sim.yaml")
    assert s.base_port == 15020
    assert s.shelters >= 1
    # Copied into every generated gateway file, so it must not carry a login.
    assert s.mqtt.username is None
    assert s.mqtt.password is None


def test_gateway_example() -> None:
    s = load_settings(GatewaySettings, EXAMPLES / "gateway.yaml")
    assert s.gateway_id == "gw-shelter-01"
    assert s.site == "shelter-01"
    # The ACL binds a gateway's login to its own topics: username = gateway id.
    assert s.mqtt.username == s.gateway_id
    assert s.mqtt.password is None
    # shelter-01 of the simulator: five devices on consecutive ports from its base_port.
    base = load_settings(SimSettings, EXAMPLES / "sim.yaml").base_port
    expected = [
        ("door", "blast_door"),
        ("vent", "ventilation"),
        ("water", "water"),
        ("env", "environment"),
        ("power", "power"),
    ]
    assert [(d.id, d.profile) for d in s.devices] == expected
    assert [d.transport.port for d in s.devices] == list(range(base, base + 5))
    assert all(d.transport.type == "tcp" for d in s.devices)


def test_gateway_example_profiles_load() -> None:
    s = load_settings(GatewaySettings, EXAMPLES / "gateway.yaml")
    for device in s.devices:
        profile = load_profile(device.profile)
        assert profile.name == device.profile
        assert profile.points


def test_collector_example() -> None:
    from shelterwatch.store.factory import open_store
    from shelterwatch.store.influx import InfluxStore

    s = load_settings(CollectorSettings, EXAMPLES / "collector.yaml")
    assert s.mqtt.username == "collector"
    assert s.mqtt.password is None
    store = open_store(s.store_url)  # not opened: no server needed
    assert isinstance(store, InfluxStore)
    assert store.retention == "365d"


def test_control_example(monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = generate_keypair()
    monkeypatch.setenv("SHELTERWATCH_COMMAND_PRIVATE_KEY", private)
    s = load_settings(ControlSettings, EXAMPLES / "control.yaml")
    assert s.mode == "production"
    assert s.command_private_key.get_secret_value() == private
    assert s.mqtt.username == "control" and s.mqtt.password is None
    assert public


def test_control_example_refuses_to_start_without_a_signing_key() -> None:
    with pytest.raises(ConfigError, match="command_private_key") as info:
        load_settings(ControlSettings, EXAMPLES / "control.yaml")
    assert "control.yaml" in str(info.value)


@pytest.mark.parametrize("name", ["sim.yaml", "gateway.yaml", "collector.yaml", "control.yaml"])
def test_examples_hold_no_secrets(name: str) -> None:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))

    def keys(node: object) -> list[str]:
        if isinstance(node, dict):
            return [str(k) for k in node] + [k for v in node.values() for k in keys(v)]
        if isinstance(node, list):
            return [k for v in node for k in keys(v)]
        return []

    found = {"password", "api_token", "token", "secret", "command_private_key"} & set(keys(data))
    assert not found, f"{name} sets {found}; secrets come from SHELTERWATCH_* variables"
    assert "@" not in str(data.get("store_url", "")), "credentials in store_url"
