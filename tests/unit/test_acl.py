"""The broker ACL that `shelterwatch deploy mqtt` writes, checked by evaluating it here the way
Mosquitto does (per-user topic rules with + and # wildcards). tests/integration/test_deploy.py
runs the same files in a real Mosquitto."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from shelterwatch.cli.deploy import FleetFile, hash_password, render_acl, write_deployment
from shelterwatch.errors import ConfigError

STATIC_ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "aclfile"
P = "shelterwatch/v1"
A, B = "gw-shelter-01", "gw-shelter-02"
FLEET = FleetFile(gateways=[A, B])


def _matches(pattern: str, topic: str) -> bool:
    pat, top = pattern.split("/"), topic.split("/")
    for i, part in enumerate(pat):
        if part == "#":
            return True
        if i >= len(top) or (part != "+" and part != top[i]):
            return False
    return len(pat) == len(top)


def rules(acl: str) -> dict[str, list[tuple[str, str]]]:
    """user -> [(access, topic pattern)], refusing anything this test does not understand."""
    out: dict[str, list[tuple[str, str]]] = {}
    user: str | None = None
    for raw in acl.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user":
            user = words[1]
            out.setdefault(user, [])
        elif words[0] == "topic" and user is not None and len(words) == 3:
            out[user].append((words[1], words[2]))
        else:
            pytest.fail(f"unexpected ACL line: {line!r}")
    return out


def allowed(acl: str, user: str, access: str, topic: str) -> bool:
    return any(
        (a == access or a == "readwrite") and _matches(pattern, topic)
        for a, pattern in rules(acl).get(user, [])
    )


@pytest.fixture(params=["generated", "static"])
def acl(request: pytest.FixtureRequest) -> str:
    if request.param == "generated":
        return render_acl(FLEET)
    return STATIC_ACL.read_text(encoding="utf-8")


def test_the_static_example_grants_exactly_what_the_generator_grants() -> None:
    assert rules(STATIC_ACL.read_text(encoding="utf-8")) == rules(render_acl(FLEET))


def test_there_are_no_pattern_lines(acl: str) -> None:
    # A pattern applies to every login, the collector and control included.
    assert not [ln for ln in acl.splitlines() if ln.strip().startswith("pattern")]


@pytest.mark.parametrize("gw", [A, B])
def test_a_gateway_publishes_only_its_own_telemetry_and_acks(acl: str, gw: str) -> None:
    other = B if gw == A else A
    for suffix in ("state", "dev/door/data", "dev/door/state", "cmd/ack"):
        assert allowed(acl, gw, "write", f"{P}/gw/{gw}/{suffix}")
        assert not allowed(acl, gw, "write", f"{P}/gw/{other}/{suffix}")
    assert not allowed(acl, gw, "write", f"{P}/alert/shelter-01/co2_high/env")
    assert not allowed(acl, gw, "write", f"{P}/gw/{gw}/something/else")


@pytest.mark.parametrize("gw", [A, B])
def test_a_gateway_never_publishes_a_command_and_reads_only_its_own(acl: str, gw: str) -> None:
    other = B if gw == A else A
    assert not allowed(acl, gw, "write", f"{P}/gw/{gw}/cmd")
    assert not allowed(acl, gw, "write", f"{P}/gw/{other}/cmd")
    assert allowed(acl, gw, "read", f"{P}/gw/{gw}/cmd")
    assert not allowed(acl, gw, "read", f"{P}/gw/{other}/cmd")
    assert not allowed(acl, gw, "read", f"{P}/gw/{other}/dev/door/data")


def test_only_control_publishes_commands(acl: str) -> None:
    cmd = f"{P}/gw/{A}/cmd"
    assert [u for u in rules(acl) if allowed(acl, u, "write", cmd)] == ["control"]
    assert allowed(acl, "control", "read", f"{P}/gw/{A}/cmd/ack")
    assert allowed(acl, "control", "read", f"{P}/gw/{A}/state")
    assert not allowed(acl, "control", "write", f"{P}/gw/{A}/dev/door/data")


def test_the_collector_reads_telemetry_and_publishes_only_alerts(acl: str) -> None:
    for suffix in ("state", "dev/door/data", "dev/door/state"):
        assert allowed(acl, "collector", "read", f"{P}/gw/{A}/{suffix}")
        assert not allowed(acl, "collector", "write", f"{P}/gw/{A}/{suffix}")
    assert not allowed(acl, "collector", "write", f"{P}/gw/{A}/cmd")
    assert not allowed(acl, "collector", "read", f"{P}/gw/{A}/cmd")
    assert allowed(acl, "collector", "write", f"{P}/alert/shelter-01/co2_high/env")


def test_logins_and_prefix_come_from_the_fleet_file() -> None:
    fleet = FleetFile(gateways=["gw-a"], collector="ingest", control="ops", prefix="acme/v1")
    text = render_acl(fleet)
    assert set(rules(text)) == {"ingest", "ops", "gw-a"}
    assert allowed(text, "ops", "write", "acme/v1/gw/gw-a/cmd")
    assert allowed(text, "gw-a", "write", "acme/v1/gw/gw-a/dev/x/data")
    assert not allowed(text, "gw-a", "write", f"{P}/gw/gw-a/dev/x/data")


def test_a_simulator_login_reads_exercise_injects_and_nothing_else() -> None:
    text = render_acl(FleetFile(gateways=[A], simulator="sim"))
    assert rules(text)["sim"] == [("read", f"{P}/sim/inject")]
    assert allowed(text, "control", "write", f"{P}/sim/inject")
    for login in ("sim", A, "collector"):
        assert not allowed(text, login, "write", f"{P}/sim/inject"), login
    assert not allowed(text, "sim", "read", f"{P}/gw/{A}/cmd")
    # Without one, as in production, nobody reads them.
    assert "sim" not in rules(render_acl(FLEET))


@pytest.mark.parametrize(
    "doc",
    [
        {"gateways": ["gw-1", "gw-1"]},
        {"gateways": ["gw-1"], "simulator": "gw-1"},
        {"gateways": ["control"]},
        {"gateways": ["gw-1"], "collector": "gw-1"},
        {"gateways": ["GW 1"]},
        {"gateways": ["gw/1"]},
        {"gateways": ["gw-1"], "control": "a:b"},
        {"gateways": ["gw-1"], "prefix": "shelterwatch/#"},
        {"gateways": ["gw-1"], "extra": True},
    ],
)
def test_fleet_files_that_would_make_a_wrong_acl_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FleetFile.model_validate(doc)


def test_password_hash_is_mosquittos_pbkdf2_format() -> None:
    # A line written by `mosquitto_passwd -U` (Mosquitto 2.0.11) for the password "secret".
    salt = base64.b64decode("LBY8P5SIER8p/ajh")
    assert hash_password("secret", salt) == (
        "$7$101$LBY8P5SIER8p/ajh$KKYOh2oa/BFR9UjwWbhsguCMwCUTImLLufhlsLxJbG5OE/6/9KEBkpy2noiP"
        "+zM4gixeqHcG3Bk0bHZy20bhCg=="
    )
    assert hash_password("secret") != hash_password("secret")  # a new salt each time


def test_write_deployment_files_and_modes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    passwords = write_deployment(FLEET, out, hasher="builtin")
    assert set(passwords) == {"collector", "control", A, B}
    assert len(set(passwords.values())) == 4
    lines = (out / "passwd").read_text().splitlines()
    assert [ln.split(":", 1)[0] for ln in lines] == ["collector", "control", A, B]
    assert all(ln.split(":", 1)[1].startswith("$7$101$") for ln in lines)
    assert not any(p in (out / "passwd").read_text() for p in passwords.values())
    assert stat.S_IMODE((out / "passwd").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "credentials").stat().st_mode) == 0o700
    for login, password in passwords.items():
        env = out / "credentials" / f"{login}.env"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
        assert env.read_text().splitlines() == [
            f"SHELTERWATCH_MQTT__USERNAME={login}",
            f"SHELTERWATCH_MQTT__PASSWORD={password}",
        ]
    assert (out / "aclfile").read_text() == render_acl(FLEET)
    # Running it again would silently change every password: only with force.
    with pytest.raises(ConfigError, match="--force"):
        write_deployment(FLEET, out, hasher="builtin")
    again = write_deployment(FLEET, out, force=True, hasher="builtin")
    assert again != passwords
