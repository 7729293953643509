"""docs/gateway.md stays in step with the gateway settings and the profile model.

Every ```yaml block right after a marker line is checked:

- ``<!-- gateway-config -->``: validates as ``GatewaySettings``. A device whose profile is a
  file path is pointed at the doc's own profile block of that name (written to tmp_path).
- ``<!-- gateway-config-invalid -->``: must be refused (an example of what fails).
- ``<!-- profile -->``: validates as ``Profile``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gateway.planner import plan_reads
from gateway.settings import GatewaySettings
from shelterwatch import codec
from shelterwatch.errors import CodecError
from shelterwatch.profiles import builtin_names
from shelterwatch.profiles.model import Profile

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"

_MARKER = re.compile(r"<!--\s*([a-z-]+)\s*-->")
_BLOCK = re.compile(
    r"<!--\s*([a-z-]+)\s*-->[ \t]*\n(?:[ \t]*\n)*```yaml\n(.*?)\n```", re.MULTILINE | re.DOTALL
)
KINDS = {"gateway-config", "gateway-config-invalid", "profile"}


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks(kind: str) -> list[str]:
    return [body for k, body in _BLOCK.findall(_text()) if k == kind]


def _profiles() -> dict[str, str]:
    """The doc's profile blocks by profile name."""
    return {yaml.safe_load(body)["name"]: body for body in _blocks("profile")}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The doc is checked as written, whatever this machine's environment holds.
    for name in list(os.environ):
        if name.startswith("SHELTERWATCH_"):
            monkeypatch.delenv(name)


def _with_doc_profiles(data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Point devices whose profile is a file path at the doc's profile block of that name."""
    profiles = _profiles()
    for device in data.get("devices", []):
        ref = str(device["profile"])
        if not ref.endswith((".yaml", ".yml")):
            assert ref in builtin_names(), f"device {device['id']}: unknown profile {ref}"
            continue
        name = Path(ref).stem
        assert name in profiles, f"device {device['id']}: the doc has no profile {name!r}"
        path = tmp_path / Path(ref).name
        path.write_text(profiles[name], encoding="utf-8")
        device["profile"] = str(path)
    return data


def test_every_marker_has_a_yaml_block() -> None:
    # A marker whose block does not follow directly would be skipped silently.
    markers = _MARKER.findall(_text())
    assert set(markers) == KINDS
    assert len(_BLOCK.findall(_text())) == len(markers)


@pytest.mark.parametrize("index", range(len(_blocks("profile"))))
def test_profile_validates(index: int) -> None:
    profile = Profile.model_validate(yaml.safe_load(_blocks("profile")[index]))
    assert profile.points


@pytest.mark.parametrize("index", range(len(_blocks("gateway-config"))))
def test_gateway_config_validates(index: int, tmp_path: Path) -> None:
    data = _with_doc_profiles(yaml.safe_load(_blocks("gateway-config")[index]), tmp_path)
    settings = GatewaySettings.model_validate(data)
    assert settings.devices
    assert settings.mqtt.password is None, "passwords belong in SHELTERWATCH_MQTT__PASSWORD"


@pytest.mark.parametrize("index", range(len(_blocks("gateway-config-invalid"))))
def test_invalid_gateway_config_is_refused(index: int, tmp_path: Path) -> None:
    data = _with_doc_profiles(yaml.safe_load(_blocks("gateway-config-invalid")[index]), tmp_path)
    with pytest.raises(ValidationError, match="share link"):
        GatewaySettings.model_validate(data)


def test_full_example_shows_every_transport() -> None:
    full = GatewaySettings.model_validate(yaml.safe_load(_blocks("gateway-config")[0]))
    assert {d.transport.type for d in full.devices} == {"tcp", "rtu", "rtu_over_tcp"}
    # One RS-485 bus with two devices on different unit ids.
    rtu = [d for d in full.devices if d.transport.type == "rtu"]
    assert len(rtu) == 2
    assert len({d.transport.link_id for d in rtu}) == 1
    assert len({d.unit_id for d in rtu}) == 2
    assert full.mqtt.username == full.gateway_id
    assert full.outbox.path is not None


def test_worked_example_decodes_as_the_doc_says() -> None:
    profile = Profile.model_validate(yaml.safe_load(_profiles()["nordbau_dpm20"]))
    p = profile.point

    # Step 4: "raw 475 → 47.5 Pa"; AI1 4000 / 12000 / 20000 µA → 0 / 300 / 600 Pa.
    assert codec.reading(p("dp_avg"), [475]) == pytest.approx(47.5)
    for raw, pa in [(4000, 0.0), (12000, 300.0), (20000, 600.0)]:
        assert codec.reading(p("filter_dp"), [raw]) == pytest.approx(pa)
    # Step 5: the NE 43 limits are inside valid_range, a broken loop is not.
    for raw in (3800, 20500):
        codec.reading(p("filter_dp"), [raw])
    for raw in (0, 3700, 21000):
        with pytest.raises(CodecError):
            codec.reading(p("filter_dp"), [raw])
    # Sentinels: 7FFF in dp_avg, 8000 hex (= -32768) in temperature, -9999.0 in the float.
    with pytest.raises(CodecError):
        codec.reading(p("dp_avg"), [0x7FFF])
    with pytest.raises(CodecError):
        codec.reading(p("temperature"), [0x8000])
    with pytest.raises(CodecError):
        codec.reading(p("dp"), codec.encode(p("dp"), -9999.0))
    # "Low word first" is CDAB: the low word of 47.5 (0x423E0000) comes first.
    assert codec.reading(p("dp"), [0x0000, 0x423E]) == pytest.approx(47.5)
    assert p("alarm_mode").enum == {0: "off", 1: "below", 2: "above"}

    # Step 8: with max_registers 16 and gap_fill 0, three block reads (0-based addresses).
    blocks = plan_reads(profile.points, max_registers=16, gap_fill=0)
    assert [(b.table.value, b.address, b.count) for b in blocks] == [
        ("input", 1, 5),
        ("input", 9, 3),
        ("holding", 0, 3),
    ]


# Options of mbpoll 1.4 (`mbpoll -h`) that take a value, and those that do not.
_MBPOLL_VALUE = {"-m", "-a", "-r", "-c", "-t", "-l", "-o", "-p", "-b", "-d", "-s", "-P"}
_MBPOLL_FLAG = {"-0", "-1", "-B", "-R", "-F", "-u", "-v", "-h", "-V"}


def _mbpoll_lines() -> list[str]:
    """mbpoll command lines in the doc's ```sh blocks, without trailing comments."""
    blocks = re.findall(r"```sh\n(.*?)\n```", _text(), re.DOTALL)
    return [
        line.split("#")[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("mbpoll ")
    ]


def test_mbpoll_commands_use_real_options() -> None:
    lines = _mbpoll_lines()
    assert lines
    for line in lines:
        args = shlex.split(line)[1:]
        positional = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in _MBPOLL_VALUE:
                assert i + 1 < len(args), line
                i += 2
                continue
            if arg in _MBPOLL_FLAG:
                i += 1
                continue
            assert not arg.startswith("-"), f"unknown mbpoll option {arg}: {line}"
            positional.append(arg)
            i += 1
        # One device or host, and no values (values after it would be written).
        assert len(positional) == 1, line
        assert "-1" in args, f"poll once (-1), or mbpoll polls forever: {line}"
        if "rtu" in args:
            assert {"-b", "-P"} <= set(args), f"give the serial settings: {line}"
