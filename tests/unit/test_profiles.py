"""Device profiles: the built-ins load, and bad profiles fail naming the file, point and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shelterwatch.contract import is_slug
from shelterwatch.errors import ConfigError
from shelterwatch.profiles import (
    BUILTIN_DIR,
    DataType,
    Order,
    Profile,
    RegisterKind,
    builtin_names,
    load_profile,
)

EXPECTED = [
    "blast_door",
    "environment",
    "power",
    "siren",
    "siren_relay",
    "ventilation",
    "water",
]


def test_the_builtins_exist() -> None:
    assert builtin_names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_builtin_profile_loads(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.name == name
    assert is_slug(profile.kind)  # published as DeviceData.kind, a slug
    assert profile.points
    # The same file loads by path too.
    assert load_profile(str(BUILTIN_DIR / f"{name}.yaml")) == profile
    for point in profile.points:
        assert point.words >= 1
        assert point.address + point.words <= 65536
        if point.writable:
            assert point.table.writable


def test_builtin_details() -> None:
    assert load_profile("ventilation").point("fan_current").order is Order.CDAB
    assert load_profile("environment").point("humidity").order is Order.BADC
    firmware = load_profile("siren").point("firmware")
    assert (firmware.type, firmware.length, firmware.words) == (DataType.STRING, 8, 8)
    assert load_profile("blast_door").point("closed").table is RegisterKind.DISCRETE
    assert load_profile("blast_door").point("position").value_kind == "string"
    assert load_profile("power").point("mains_present").value_kind == "bool"
    assert load_profile("water").point("inlet_pressure").offset == -0.25
    with pytest.raises(KeyError):
        load_profile("water").point("nope")


def test_unknown_builtin_lists_the_builtin_profiles() -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'no_such_device'.*blast_door"):
        load_profile("no_such_device")


def test_missing_profile_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_profile(str(tmp_path / "missing.yaml"))


GOOD = {"name": "ok", "register": "input", "address": 0, "type": "uint16"}


def write(tmp_path: Path, points: list[dict[str, object]], **top: object) -> Path:
    path = tmp_path / "custom_door.yaml"
    profile = {"name": "custom_door", "kind": "door", **top, "points": points}
    path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return path


def test_custom_profile_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            GOOD,
            {
                "name": "level",
                "register": "holding",
                "address": 3,
                "type": "float32",
                "order": "DCBA",
                "scale": 2.0,
                "writable": True,
            },
        ],
        interval_s=0.5,
    )
    profile = load_profile(str(path))
    assert profile.interval_s == 0.5
    assert profile.point("level").order is Order.DCBA


@pytest.mark.parametrize(
    ("bad", "key", "words"),
    [
        # bool on a holding register
        (
            {"name": "flag", "register": "holding", "address": 1, "type": "bool"},
            "points.1",
            ["'flag'", "bool", "holding"],
        ),
        # bit without `bit`
        (
            {"name": "fault", "register": "input", "address": 1, "type": "bit"},
            "points.1",
            ["'fault'", "'bit' is required"],
        ),
        # `bit` on a type that is not bit
        (
            {"name": "fault", "register": "input", "address": 1, "type": "uint16", "bit": 3},
            "points.1",
            ["'fault'", "'bit'"],
        ),
        # string without length
        (
            {"name": "serial", "register": "input", "address": 1, "type": "string"},
            "points.1",
            ["'serial'", "'length' is required"],
        ),
        # writable input register
        (
            {
                "name": "setpoint",
                "register": "input",
                "address": 1,
                "type": "uint16",
                "writable": True,
            },
            "points.1",
            ["'setpoint'", "read-only"],
        ),
        # unknown key
        (
            {"name": "temp", "register": "input", "address": 1, "type": "int16", "scael": 0.1},
            "points.1.scael",
            ["Extra inputs"],
        ),
        # bad values of known keys
        (
            {"name": "temp", "register": "input", "address": 1, "type": "int24"},
            "points.1.type",
            ["float32"],
        ),
        (
            {"name": "temp", "register": "input", "address": 1, "type": "float32", "order": "BACD"},
            "points.1.order",
            ["ABCD"],
        ),
        (
            {"name": "temp", "register": "input", "address": 70000, "type": "int16"},
            "points.1.address",
            ["65535"],
        ),
        (
            {"name": "temp", "register": "input", "address": 1, "type": "int16", "bit": 16},
            "points.1.bit",
            ["15"],
        ),
        (
            {"name": "Temp", "register": "input", "address": 1, "type": "int16"},
            "points.1.name",
            ["pattern"],
        ),
        (
            {"name": "temp", "register": "input", "address": 1, "type": "int16", "scale": 0},
            "points.1",
            ["'temp'", "scale"],
        ),
        (
            {
                "name": "mode",
                "register": "input",
                "address": 1,
                "type": "float32",
                "enum": {0: "a"},
            },
            "points.1",
            ["'mode'", "enum"],
        ),
        (
            {"name": "tail", "register": "input", "address": 65535, "type": "uint32"},
            "points.1",
            ["'tail'", "65535"],
        ),
    ],
)
def test_bad_point_names_file_point_and_key(
    tmp_path: Path, bad: dict[str, object], key: str, words: list[str]
) -> None:
    path = write(tmp_path, [GOOD, bad])
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message
    assert f"  {key}: " in message, message
    for word in words:
        assert word in message, message


def test_duplicate_point_names(tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD, {**GOOD, "address": 1}])
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert str(path) in message
    assert "'ok' appears twice" in message


@pytest.mark.parametrize(
    ("top", "key"),
    [
        ({"interval_s": 0}, "interval_s"),
        ({"interval_s": 7200}, "interval_s"),
        ({"vendor": "acme"}, "vendor"),
        ({"kind": "Blast Door"}, "kind"),
    ],
)
def test_bad_profile_keys(tmp_path: Path, top: dict[str, object], key: str) -> None:
    path = write(tmp_path, [GOOD], **top)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)
    assert f"  {key}: " in str(info.value)


def test_profile_needs_points(tmp_path: Path) -> None:
    path = write(tmp_path, [])
    with pytest.raises(ConfigError, match="points"):
        load_profile(str(path))


@pytest.mark.parametrize(
    ("text", "match"),
    [("name: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "must be a mapping")],
)
def test_unreadable_profile_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)
