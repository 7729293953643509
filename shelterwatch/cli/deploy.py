"""`shelterwatch deploy ...`: broker logins and the ACL for a fleet.

``shelterwatch deploy mqtt --fleet fleet.yaml --out DIR`` writes, for the gateways listed in
the fleet file plus the collector and control logins:

- ``DIR/passwd``: the Mosquitto password file (PBKDF2-SHA512, Mosquitto's ``$7$`` format),
  hashed by ``mosquitto_passwd -U`` when it is installed (one process for the whole fleet, and
  no password on a command line where ``ps`` shows it), or by the same algorithm here;
- ``DIR/aclfile``: one ``user`` block per login (never a ``pattern``, which would apply to the
  collector and control logins too). A gateway may publish only its own state, device data,
  device state and command acks, and read only its own command topic: it can neither command
  itself nor anyone else. Only the control login may publish commands;
- ``DIR/credentials/<login>.env``: ``SHELTERWATCH_MQTT__USERNAME`` and
  ``SHELTERWATCH_MQTT__PASSWORD`` for each service (mode 0600), to hand to it, for example as
  a systemd ``EnvironmentFile=``.

The ACL rules themselves are pure functions (``render_acl``), unit-tested in
tests/unit/test_acl.py and run against a real Mosquitto in tests/integration/test_deploy.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shelterwatch.config import format_validation_error, read_yaml
from shelterwatch.contract import DEFAULT_PREFIX, SLUG_PATTERN
from shelterwatch.errors import ConfigError

__all__ = [
    "FleetFile",
    "app",
    "gateway_rules",
    "hash_password",
    "render_acl",
    "write_deployment",
]

app = typer.Typer(help="deploy", no_args_is_help=True)

# Logins go into "user:hash" lines and ACL "user" lines: no colon, no whitespace.
LOGIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A topic prefix without wildcards or whitespace, as the contract uses it.
PREFIX_PATTERN = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
# Mosquitto's defaults for "$7$": PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, 64 bytes.
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12
_PASSWORD_BYTES = 24

Login = Annotated[str, Field(pattern=LOGIN_PATTERN)]


class FleetFile(BaseModel):
    """The fleet file: which logins the broker knows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gateways: list[Annotated[str, Field(pattern=SLUG_PATTERN)]]
    collector: Login = "collector"
    control: Login = "control"
    # The login of a simulated fleet that plays exercise injects (firmware_sim.injects);
    # None: no simulator on this broker, as in production.
    simulator: Login | None = None
    prefix: Annotated[str, Field(pattern=PREFIX_PATTERN)] = DEFAULT_PREFIX

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[str] = set()
        for login in [*self.logins]:
            if login in seen:
                raise ValueError(f"login {login!r} appears twice; every login must be distinct")
            seen.add(login)
        return self

    @property
    def logins(self) -> list[str]:
        simulator = [self.simulator] if self.simulator is not None else []
        return [self.collector, self.control, *simulator, *self.gateways]


def gateway_rules(gateway: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The ACL lines of one gateway: publish its own telemetry and acks, read its commands."""
    base = f"{prefix}/gw/{gateway}"
    return [
        # The birth and the will (Mosquitto checks the will topic at CONNECT).
        f"topic write {base}/state",
        f"topic write {base}/dev/+/data",
        f"topic write {base}/dev/+/state",
        f"topic write {base}/cmd/ack",
        # Read only: a gateway that could publish here could command itself.
        f"topic read {base}/cmd",
    ]


def collector_rules(prefix: str = DEFAULT_PREFIX) -> list[str]:
    return [
        f"topic read {prefix}/gw/+/state",
        f"topic read {prefix}/gw/+/dev/+/data",
        f"topic read {prefix}/gw/+/dev/+/state",
        # The alert engine raises and clears alerts, and reads the active ones back.
        f"topic readwrite {prefix}/alert/#",
        # Each site's posture, which the alert rules read (docs/conversion.md).
        f"topic read {prefix}/posture/+",
    ]


def control_rules(prefix: str = DEFAULT_PREFIX) -> list[str]:
    return [
        # The only login that may command a gateway; gateways verify the signature as well.
        f"topic write {prefix}/gw/+/cmd",
        # CAP 1.2 for the public warning channels (docs/cap.md).
        f"topic write {prefix}/cap",
        # Each site's posture during a conversion (docs/conversion.md).
        f"topic write {prefix}/posture/+",
        # An exercise's injected situations, for a simulated fleet (docs/areas-and-exercises.md).
        f"topic write {prefix}/sim/inject",
        f"topic read {prefix}/gw/+/cmd/ack",
        f"topic read {prefix}/gw/+/state",
        f"topic read {prefix}/gw/+/dev/+/data",
        f"topic read {prefix}/gw/+/dev/+/state",
        f"topic read {prefix}/alert/#",
    ]


def render_acl(fleet: FleetFile) -> str:
    p = fleet.prefix
    lines = [
        "# Mosquitto ACL for a Shelterwatch fleet, written by `shelterwatch deploy mqtt`.",
        "# Anything not granted here is denied. Regenerate it rather than editing by hand.",
        "",
        f"# The collector ({fleet.collector}): reads telemetry, publishes alerts only.",
        f"user {fleet.collector}",
        *collector_rules(p),
        "",
        f"# The control service ({fleet.control}): the only login that sends commands.",
        f"user {fleet.control}",
        *control_rules(p),
    ]
    if fleet.simulator is not None:
        lines += [
            "",
            f"# The simulated fleet ({fleet.simulator}): reads exercise injects, nothing else.",
            f"user {fleet.simulator}",
            f"topic read {p}/sim/inject",
        ]
    for gateway in fleet.gateways:
        lines += ["", f"user {gateway}", *gateway_rules(gateway, p)]
    return "\n".join(lines) + "\n"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto ``$7$`` password hash (what ``mosquitto_passwd`` writes by default)."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


Hasher = Literal["auto", "mosquitto_passwd", "builtin"]
_HASHERS: dict[str, Hasher] = {
    "auto": "auto",
    "mosquitto_passwd": "mosquitto_passwd",
    "builtin": "builtin",
}


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _password_file(path: Path, passwords: Mapping[str, str], hasher: Hasher) -> str:
    tool = shutil.which("mosquitto_passwd") if hasher != "builtin" else None
    if hasher == "mosquitto_passwd" and tool is None:
        raise ConfigError("mosquitto_passwd is not installed (Debian: apt-get install mosquitto)")
    if tool is None:
        _write_private(path, "".join(f"{u}:{hash_password(p)}\n" for u, p in passwords.items()))
        return "builtin PBKDF2-SHA512"
    # Plain text first (0600), then hashed in place in one run of the real tool.
    _write_private(path, "".join(f"{u}:{p}\n" for u, p in passwords.items()))
    try:
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        path.unlink(missing_ok=True)  # never leave the plain-text passwords behind
        raise ConfigError(f"mosquitto_passwd -U {path} failed: {exc}") from exc
    os.chmod(path, 0o600)  # whatever mode the tool left: hashes are for the broker only
    return tool


def write_deployment(
    fleet: FleetFile, out: Path, *, force: bool = False, hasher: Hasher = "auto"
) -> dict[str, str]:
    """Write passwd, aclfile and credentials/<login>.env under ``out``; return the passwords."""
    passwd, acl, creds = out / "passwd", out / "aclfile", out / "credentials"
    existing = [p for p in (passwd, acl, creds) if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{', '.join(map(str, existing))} exist(s); --force replaces them and gives every "
            "login a new password"
        )
    out.mkdir(parents=True, exist_ok=True)
    creds.mkdir(mode=0o700, exist_ok=True)
    os.chmod(creds, 0o700)
    passwords = {login: secrets.token_urlsafe(_PASSWORD_BYTES) for login in fleet.logins}
    _password_file(passwd, passwords, hasher)
    acl.write_text(render_acl(fleet), encoding="utf-8")
    for login, password in passwords.items():
        _write_private(
            creds / f"{login}.env",
            f"SHELTERWATCH_MQTT__USERNAME={login}\nSHELTERWATCH_MQTT__PASSWORD={password}\n",
        )
    return passwords


def load_fleet(path: Path) -> FleetFile:
    try:
        return FleetFile.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"fleet file {path}")) from exc


@app.command()
def mqtt(
    fleet: Annotated[
        Path, typer.Option(help="YAML: gateways: [gw-...], optional collector, control, prefix")
    ],
    out: Annotated[Path, typer.Option(help="directory for passwd, aclfile and credentials/")],
    force: Annotated[bool, typer.Option(help="replace existing files (new passwords)")] = False,
    hasher: Annotated[
        str, typer.Option(help="auto (mosquitto_passwd if installed), mosquitto_passwd, builtin")
    ] = "auto",
) -> None:
    """Write the Mosquitto password file, the ACL and one credentials file per login."""
    choice = _HASHERS.get(hasher)
    if choice is None:
        raise typer.BadParameter("use auto, mosquitto_passwd or builtin", param_hint="--hasher")
    try:
        spec = load_fleet(fleet)
        passwords = write_deployment(spec, out, force=force, hasher=choice)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {out / 'passwd'} and {out / 'aclfile'} for {len(passwords)} logins")
    typer.echo(f"credentials (mode 0600, one per service): {out / 'credentials'}/<login>.env")
    typer.echo(
        "install: passwd and aclfile into /etc/mosquitto/shelterwatch/ (root:mosquitto 0640), "
        "then `systemctl reload mosquitto`"
    )
