"""The compose stack (docker-compose.yml, Dockerfile, deploy/compose/) holds together without
a Docker engine: the file matches the Compose Specification's schema, every file it names
exists (or is an env file with a committed example, or a file `shelterwatch deploy mqtt`
writes), every SHELTERWATCH_* variable names a real setting, and the service configs load with
the real settings classes. docker-compose itself checks the file when it is installed.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import jsonschema_rs
import pytest
import yaml
from pydantic import BaseModel

from collector import CollectorSettings
from control import ControlSettings
from gateway import GatewaySettings
from shelterwatch.cli.deploy import load_fleet, write_deployment
from shelterwatch.cli.services import SimSettings
from shelterwatch.config import ENV_PREFIX, ServiceSettings, load_settings
from shelterwatch.errors import ConfigError
from shelterwatch.signing import generate_keypair, load_private_key

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
STACK = ROOT / "deploy" / "compose"
SCHEMA = STACK / "compose-spec.schema.json"
# Written by `shelterwatch deploy mqtt --fleet deploy/compose/fleet.yaml --out deploy/compose/mqtt`.
GENERATED = STACK / "mqtt"
IMAGE = "shelterwatch:local"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "control": ControlSettings,
    "db": ControlSettings,
    "collector": CollectorSettings,
    "gateway": GatewaySettings,
    "sim": SimSettings,
}
# SHELTERWATCH_* variables read outside the settings classes (logging, CLI options).
NOT_SETTINGS = {
    "SHELTERWATCH_LOG_LEVEL",
    "SHELTERWATCH_LOG_FORMAT",
    "SHELTERWATCH_SIM_CONTROL",
    "SHELTERWATCH_DASHBOARDS_DIR",
}
PLACEHOLDER = re.compile(r"CHANGE_ME_[A-Z0-9_]+")


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def ours() -> dict[str, dict[str, Any]]:
    """The services that run the Shelterwatch image."""
    return {name: s for name, s in services().items() if s.get("image") == IMAGE}


def role(service: dict[str, Any]) -> str:
    command = service["command"]
    assert isinstance(command, list), "give Shelterwatch commands as lists"
    return str(command[0])


def repo_path(ref: str) -> Path:
    """A path in docker-compose.yml, relative to the file's directory (the repository root)."""
    assert not ref.startswith("/"), f"{ref}: use paths relative to the repository"
    return (ROOT / ref).resolve()


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else list(files)


def config_file(service: dict[str, Any]) -> Path:
    """The host file mounted where the service's --config points."""
    command = service["command"]
    target = command[command.index("--config") + 1]
    sources = [src for src, dst in bind_mounts(service) if dst == target]
    assert sources, f"--config {target} is not mounted"
    return repo_path(sources[0])


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not KEY=value"
        env[key.strip()] = value
    return env


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `shelterwatch deploy mqtt` writes for the stack's fleet file, in a temp dir."""
    out = tmp_path_factory.mktemp("mqtt")
    write_deployment(load_fleet(STACK / "fleet.yaml"), out, force=True, hasher="builtin")
    return out


def env_source(ref: str, generated: Path) -> Path:
    """The file that stands for an env_file: its committed example, or the generated one."""
    path = repo_path(ref)
    if path.is_relative_to(GENERATED):
        return generated / path.relative_to(GENERATED)
    return path.with_name(path.name + ".example")


def service_env(service: dict[str, Any], generated: Path) -> dict[str, str]:
    """The environment a service gets from its env files (examples) and `environment`."""
    env: dict[str, str] = {}
    for ref in env_files(service):
        env.update(read_env(env_source(ref, generated)))
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "give `environment` as a mapping"
    env.update({k: str(v) for k, v in environment.items()})
    return env


def fill_placeholders(env: dict[str, str]) -> dict[str, str]:
    """Replace the CHANGE_ME_* placeholders with values of the right kind, as an operator would."""
    private, public = generate_keypair()
    values = {"CHANGE_ME_COMMAND_PRIVATE_KEY": private, "CHANGE_ME_COMMAND_PUBLIC_KEY": public}

    def value(match: re.Match[str]) -> str:
        return values.setdefault(match.group(0), secrets.token_hex(24))

    return {k: PLACEHOLDER.sub(value, v) for k, v in env.items()}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack's files are checked as written, whatever this machine's environment holds.
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def load(
    service: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        return load_settings(SETTINGS[role(service)], config_file(service))


# -- the schema ----------------------------------------------------------------------------------


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    return [
        f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_matches_the_compose_spec_schema() -> None:
    assert schema_errors(compose()) == []


def test_schema_catches_mistakes() -> None:
    # The vendored schema is really applied: an unknown key, a bad type and an unknown
    # depends_on condition are each reported.
    broken = copy.deepcopy(compose())
    broken["services"]["control"]["restart_policy"] = "always"
    broken["services"]["collector-1"]["ports"] = "1883"
    broken["services"]["control"]["depends_on"]["migrate"]["condition"] = "service_done"
    errors = schema_errors(broken)
    assert len(errors) >= 3, errors


def test_schema_is_the_documented_copy() -> None:
    readme = (STACK / "README.md").read_text(encoding="utf-8")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    assert "docker-compose 1.29.2" in readme
    assert "compose/config/compose_spec.json" in readme


# -- files the stack names -----------------------------------------------------------------------


def test_every_referenced_file_exists(generated: Path) -> None:
    missing = []
    for name, service in services().items():
        build = service.get("build")
        if build is not None:
            context = repo_path(build["context"])
            if not context.is_dir():
                missing.append(f"{name}: build context {build['context']}")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                missing.append(f"{name}: Dockerfile")
        for source, _target in bind_mounts(service):
            path = repo_path(source)
            if path.is_relative_to(GENERATED):
                # Written by `shelterwatch deploy mqtt`: the generator must make exactly it.
                if not (generated / path.relative_to(GENERATED)).exists():
                    missing.append(f"{name}: {source} (not written by shelterwatch deploy mqtt)")
            elif not path.exists():
                missing.append(f"{name}: {source}")
        for ref in env_files(service):
            if not env_source(ref, generated).is_file():
                missing.append(f"{name}: env file {ref} (needs its .example or the generator)")
    assert missing == []


def test_every_env_example_is_used() -> None:
    used = {repo_path(ref) for s in services().values() for ref in env_files(s)}
    examples = {p.name.removesuffix(".example") for p in STACK.glob("*.env.example")}
    assert examples == {p.name for p in used if p.parent == STACK}


def test_dockerfile_copies_what_exists() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER shelterwatch$", text, re.M), "the image must not run as root"
    assert 'ENTRYPOINT ["shelterwatch"]' in text
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"
    assert re.search(r"^COPY dashboards ", text, re.M)


def test_secrets_stay_out_of_git_and_the_image() -> None:
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/deploy/compose/*.env" in gitignore
    assert "/deploy/compose/mqtt/" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".git", ".venv", "data", "**/*.env", "deploy/compose/mqtt", "tests"):
        assert pattern in dockerignore


# -- services: health, restarts, start order ------------------------------------------------------


def test_long_running_services_have_health_checks_and_restart() -> None:
    for name, service in services().items():
        if name == "migrate":
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_migrate_runs_once_before_control() -> None:
    migrate, control = services()["migrate"], services()["control"]
    assert migrate["command"][:2] == ["db", "upgrade"]
    assert migrate.get("restart") == "no"
    assert control["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # Same settings file and secrets: it migrates the database the service then uses.
    assert config_file(migrate) == config_file(control)
    assert set(env_files(migrate)) <= set(env_files(control))


def test_waits_are_on_services_that_report_health() -> None:
    for name, service in services().items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services(), f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert services()[target].get("healthcheck"), f"{name} waits on {target}"


def test_shelterwatch_services_wait_for_the_broker() -> None:
    for name, service in ours().items():
        if role(service) in {"control", "collector", "gateway"}:
            assert service["depends_on"]["mosquitto"] == {"condition": "service_healthy"}, name


# -- settings ------------------------------------------------------------------------------------


def field_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    candidates = [field.annotation, *get_args(field.annotation)]
    nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return any(field_exists(c, path[1:]) for c in nested)


def test_every_shelterwatch_variable_names_a_setting(generated: Path) -> None:
    unknown = []
    for name, service in ours().items():
        model = SETTINGS[role(service)]
        for key in service_env(service, generated):
            if not key.startswith(ENV_PREFIX) or key in NOT_SETTINGS:
                continue
            path = key.removeprefix(ENV_PREFIX).lower().split("__")
            if not field_exists(model, path):
                unknown.append(f"{name}: {key} is not a {model.__name__} setting")
    assert unknown == []


def test_shelterwatch_variables_only_go_to_shelterwatch_services(generated: Path) -> None:
    for name, service in services().items():
        if name not in ours():
            assert not [k for k in service_env(service, generated) if k.startswith(ENV_PREFIX)]


def test_service_configs_load(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = load_fleet(STACK / "fleet.yaml")
    loaded = {
        name: load(s, fill_placeholders(service_env(s, generated)), monkeypatch)
        for name, s in ours().items()
    }
    sim = loaded["sim"]
    assert isinstance(sim, SimSettings)
    assert sim.host == "0.0.0.0"
    sim_ports = range(sim.base_port, sim.base_port + 5 * sim.shelters + sim.sirens)

    collectors, gateways = [], []
    for name, s in loaded.items():
        if isinstance(s, GatewaySettings):
            gateways.append(s)
            assert s.mqtt.username == s.gateway_id and s.gateway_id in fleet.gateways
            assert s.commands.public_key, f"{name}: commands would all be refused"
            assert all(d.transport.host == "sim" for d in s.devices)  # type: ignore[union-attr]
            assert all(d.transport.port in sim_ports for d in s.devices)
            assert str(s.outbox.path).startswith("/var/lib/shelterwatch/")
        elif isinstance(s, CollectorSettings):
            collectors.append(s)
            assert s.mqtt.username == fleet.collector
            assert s.store_url.startswith("influxdb://") and "create=false" in s.store_url
            if s.alerts.enabled:
                assert str(s.alerts.state_path).startswith("/var/lib/shelterwatch/")
        elif isinstance(s, ControlSettings):
            assert s.mode == "production"
            assert s.mqtt.username == fleet.control
            assert s.database_url.startswith("postgresql://")
            assert not s.migrate_on_start
            assert s.command_client_id and s.alerts.client_id
            load_private_key(s.command_private_key.get_secret_value())
        if not isinstance(s, SimSettings):
            assert s.mqtt.host == "mosquitto", name  # type: ignore[attr-defined]
        if role(ours()[name]) in {"control", "collector", "gateway"}:
            assert s.mqtt.password, f"{name} has no broker password"  # type: ignore[attr-defined]
    ids = [c.client_id for c in collectors]
    assert len(set(ids)) == len(ids), f"collectors share a client id: {ids}"
    # At least two collectors split the data through one shared subscription group.
    groups = [c.shared_group for c in collectors if c.shared_group is not None]
    assert len(groups) >= 2 and len(set(groups)) == 1, groups
    # The alert engine needs each device's every reading: one collector, outside the group.
    alerting = [c for c in collectors if c.alerts.enabled]
    assert len(alerting) == 1 and alerting[0].shared_group is None
    assert len(gateways) == len(fleet.gateways)


def test_placeholders_are_refused(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = services()["gateway-shelter-01"]
    with pytest.raises(ConfigError, match="public_key"):
        load(gateway, service_env(gateway, generated), monkeypatch)
    control = services()["control"]
    # A placeholder is no key, and production refuses every placeholder it finds, by name.
    with pytest.raises(ConfigError, match="command_private_key"):
        load(control, service_env(control, generated), monkeypatch)
    key = {"SHELTERWATCH_COMMAND_PRIVATE_KEY": generate_keypair()[0]}
    with pytest.raises(ConfigError, match=r"database_url .* store_url .* CHANGE_ME placeholder"):
        load(control, service_env(control, generated) | key, monkeypatch)
    env = service_env(control, generated) | {"SHELTERWATCH_COMMAND_PRIVATE_KEY": ""}
    with pytest.raises(ConfigError, match="command_private_key"):
        load(control, env, monkeypatch)


def test_env_examples_carry_no_secret() -> None:
    for path in STACK.glob("*.env.example"):
        for key, value in read_env(path).items():
            secret = re.search(r"PASSWORD|PRIVATE_KEY|PUBLIC_KEY", key) or "@" in value
            if secret:
                assert PLACEHOLDER.search(value), f"{path.name}: {key} needs a CHANGE_ME_ value"


def test_logins_agree_across_env_files() -> None:
    def env(name: str) -> dict[str, str]:
        return read_env(STACK / f"{name}.env.example")

    postgres, influx, grafana = env("postgres"), env("influxdb"), env("grafana")
    pg = f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
    assert env("control")["SHELTERWATCH_DATABASE_URL"] == pg + postgres["POSTGRES_DB"]
    rw = f"influxdb://{influx['INFLUXDB_USER']}:{influx['INFLUXDB_USER_PASSWORD']}@influxdb:8086/"
    for name in ("control", "collector"):
        assert env(name)["SHELTERWATCH_STORE_URL"].startswith(rw + influx["INFLUXDB_DB"])
    assert grafana["SW_INFLUX_USER"] == influx["INFLUXDB_READ_USER"]
    assert grafana["SW_INFLUX_PASSWORD"] == influx["INFLUXDB_READ_USER_PASSWORD"]
    assert services()["grafana"]["environment"]["SW_INFLUX_DATABASE"] == influx["INFLUXDB_DB"]


# -- the broker and Grafana ----------------------------------------------------------------------


def test_mosquitto_reads_what_is_mounted() -> None:
    mosquitto = services()["mosquitto"]
    targets = [target for _src, target in bind_mounts(mosquitto)]
    conf_source = next(src for src, dst in bind_mounts(mosquitto) if dst.endswith(".conf"))
    conf: dict[str, str] = {}
    for line in repo_path(conf_source).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf.setdefault(key, value)
    assert conf["allow_anonymous"] == "false" and conf["persistence"] == "true"
    assert conf["password_file"] in targets and conf["acl_file"] in targets
    volumes = [v.split(":")[1] for v in mosquitto["volumes"] if not v.startswith(".")]
    assert conf["persistence_location"].rstrip("/") in volumes


def test_grafana_mounts_the_provisioning_where_it_looks() -> None:
    grafana = services()["grafana"]
    mounts = {target: source for source, target in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/shelterwatch.yaml").read_text(encoding="utf-8")
    )
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == "./dashboards"
    # Grafana has no default for ${VAR}: every variable of the data source must be set.
    datasource = (ROOT / "dashboards/provisioning/datasources/shelterwatch.yaml").read_text(
        encoding="utf-8"
    )
    wanted = set(re.findall(r"\$\{(SW_\w+)\}", datasource))
    given = set(grafana["environment"]) | set(read_env(STACK / "grafana.env.example"))
    assert wanted and wanted <= given


# -- the health check script ---------------------------------------------------------------------


@functools.cache
def healthcheck() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", STACK / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_health_checks_use_the_script_in_the_image() -> None:
    for name, service in ours().items():
        if name == "migrate":
            continue  # one-shot: the image's check counts it healthy while it runs
        test = service["healthcheck"]["test"]
        assert "python" in test, name
        script, mode = test[test.index("python") + 1 : test.index("python") + 3]
        assert script == "/usr/local/lib/shelterwatch/healthcheck.py", name
        assert mode in {"http", "tcp", "peer", "auto"}, name


def test_healthcheck_reads_established_connections() -> None:
    table = [
        "  sl  local_address rem_address   st tx_queue rx_queue",
        "   0: 0100007F:3A98 00000000:0000 0A 00000000:00000000",  # listening on 15000
        "   1: 0200130A:D2F0 0300130A:075B 01 00000000:00000000",  # established to 1883
        "   2: 0200130A:D2F2 0400130A:1F96 06 00000000:00000000",  # TIME_WAIT to 8086
    ]
    assert healthcheck().established_remote_ports(table) == {1883}


def test_healthcheck_finds_the_role() -> None:
    role_of = healthcheck().running_role
    assert role_of([["/sbin/docker-init", "--", "shelterwatch", "gateway"]]) == "gateway"
    assert role_of([["/opt/shelterwatch/bin/python", "/opt/shelterwatch/bin/shelterwatch",
                     "control", "--config", "x"]]) == "control"  # fmt: skip
    assert role_of([["shelterwatch", "db", "upgrade"]]) is None


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_healthcheck_tcp(listener: int) -> None:
    assert healthcheck().main(["tcp", "127.0.0.1", str(listener)]) == 0
    assert healthcheck().main(["bogus"]) == 2


# -- docker-compose itself -----------------------------------------------------------------------


def test_docker_compose_accepts_the_file(tmp_path: Path, generated: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (`make system-deps` installs it)")
    # A copy of the project where every env file exists, made from the examples.
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    for service in services().values():
        for ref in env_files(service):
            target = tmp_path / ref
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(env_source(ref, generated), target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    result = subprocess.run(
        [binary, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
