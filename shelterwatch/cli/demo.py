"""``shelterwatch demo``: the whole platform in one process, with nothing to install.

Embedded MQTT broker (amqtt) → simulated fleet (pymodbus servers) → one gateway per site →
collector into SQLite → control service over HTTP. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import uvicorn
import yaml
from pydantic import SecretStr

from shelterwatch.config import MqttSettings
from shelterwatch.errors import ConfigError
from shelterwatch.signing import generate_keypair
from shelterwatch.store.factory import open_store

if TYPE_CHECKING:
    from control import ControlSettings

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger("shelterwatch.demo")


@dataclass(frozen=True)
class DemoOptions:
    mqtt_port: int
    http_port: int
    data_dir: Path
    shelters: int
    sirens: int
    broker: str | None = None


class _Server(uvicorn.Server):
    # The demo owns Ctrl-C; uvicorn must not take the signal handlers over.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _check_port_free(port: int, what: str, flag: str) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} for the {what} is in use; pass {flag} with a free port"
                ) from exc
            raise


def _broker_settings(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ConfigError(f"--broker {url!r}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


async def run_demo(opts: DemoOptions) -> None:
    from collector import Collector, CollectorSettings
    from control import ControlSettings, create_app
    from firmware_sim import Fleet, FleetSpec
    from firmware_sim.control import DEFAULT_CONTROL_PORT, FaultServer
    from firmware_sim.injects import InjectListener
    from gateway import Gateway, GatewaySettings
    from shelterwatch.cli.broker import EmbeddedBroker
    from shelterwatch.cli.services import gateway_yaml

    _check_port_free(opts.http_port, "control service", "--http-port")
    if opts.broker:
        host, port = _broker_settings(opts.broker)
        protocol: Literal[4, 5] = 5
    else:
        host, port = "127.0.0.1", opts.mqtt_port
        _check_port_free(port, "embedded MQTT broker", "--mqtt-port")
        protocol = 4  # amqtt speaks MQTT 3.1.1 only
    mqtt = MqttSettings(host=host, port=port, protocol=protocol)
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{(opts.data_dir / 'shelterwatch.db').resolve()}"
    public_key = _command_keys(opts.data_dir)
    control = ControlSettings(
        mode="development",
        port=opts.http_port,
        store_url=store_url,
        mqtt=mqtt,
        database_url=f"sqlite:///{(opts.data_dir / 'control.db').resolve()}",
        command_private_key=SecretStr(
            (opts.data_dir / "command-key").read_text(encoding="utf-8").strip()
        ),
    )
    control_config = _write_control_config(opts.data_dir, control)
    passwords = await _demo_users(control)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            _watchdog(_STOP_DEADLINE_S)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    async with contextlib.AsyncExitStack() as stack:
        if not opts.broker:
            await stack.enter_async_context(EmbeddedBroker(host, port))
        fleet = await stack.enter_async_context(
            Fleet(
                FleetSpec(
                    shelters=opts.shelters,
                    sirens=opts.sirens,
                    base_port=0,
                    districts=_DEMO_DISTRICTS,
                )
            )
        )
        # Faults can be switched on from another shell (`shelterwatch sim fault ...`); the
        # usual port when it is free, any free one otherwise.
        faults = await stack.enter_async_context(
            FaultServer(fleet, DEFAULT_CONTROL_PORT if _port_free(DEFAULT_CONTROL_PORT) else 0)
        )
        # An exercise director's injects reach the fleet. The demo's platform sites are the
        # simulated ones (the gateways publish under the fleet's site names): no site map.
        await stack.enter_async_context(InjectListener(fleet, mqtt))
        await _demo_sirens(control, fleet.gateway_config(host, port, mqtt.prefix))
        await _demo_areas(control, fleet.gateway_config(host, port, mqtt.prefix))
        store = await stack.enter_async_context(open_store(store_url))
        gateways = [
            Gateway(
                GatewaySettings.model_validate(
                    gateway_yaml(site, mqtt)
                    | {
                        "snapshot_interval_s": 15.0,
                        "outbox": {
                            "path": str(opts.data_dir / "outbox" / f"{site['gateway_id']}.db")
                        },
                        "commands": {
                            "public_key": public_key,
                            "replay_cache_path": str(
                                opts.data_dir / "outbox" / f"{site['gateway_id']}-commands.db"
                            ),
                        },
                    }
                )
            )
            for site in fleet.gateway_config(host, port, mqtt.prefix)
        ]
        collector = Collector(
            CollectorSettings.model_validate(
                {
                    "mqtt": mqtt,
                    "client_id": "shelterwatch-demo-collector",
                    "store_url": store_url,
                    # The default rule pack, with its state kept beside the demo's data.
                    "alerts": {
                        "enabled": True,
                        "state_path": str(opts.data_dir / "alert-state.db"),
                    },
                }
            ),
            store,
        )
        server = _Server(
            uvicorn.Config(
                create_app(control),
                host="127.0.0.1",
                port=opts.http_port,
                log_config=None,
                lifespan="on",
            )
        )

        async def stopper() -> None:
            await stop.wait()
            server.should_exit = True
            raise _Stop

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(collector.run(), name="collector")
                for gw in gateways:
                    tg.create_task(gw.run(), name=f"gateway-{gw.settings.gateway_id}")
                tg.create_task(server.serve(), name="control")
                tg.create_task(stopper(), name="stopper")
                _print_banner(
                    opts,
                    mqtt,
                    len(fleet.devices),
                    len(gateways),
                    store_url,
                    passwords,
                    control_config,
                    faults.url,
                )
        except* _Stop:
            log.info("stopping the demo")
    log.info("demo stopped")
    # Every service and store is closed now; what is left is the executor threads' shutdown,
    # which once waited on a blocked worker until the stop deadline. Nothing is left to lose
    # by then, so the wait is short, and a thread still busy is named.
    _exit_soon(_EXIT_GRACE_S)


# Ctrl-C must stop the demo. Every part closes in turn; one that does not within this long
# would leave the person at the keyboard waiting with no word, so the demo says so and exits.
_STOP_DEADLINE_S = 30.0


_EXIT_GRACE_S = 3.0


def _exit_soon(seconds: float) -> None:
    def expire() -> None:
        busy = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
        log.warning(
            "the demo stopped, but worker threads were still busy %.0f s later (%s); "
            "exiting without them",
            seconds,
            ", ".join(n for n in busy if n != "MainThread") or "none",
        )
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _watchdog(seconds: float) -> None:
    def expire() -> None:
        log.error(
            "the demo did not stop within %.0f s of Ctrl-C; exiting now (its data is in WAL "
            "databases, which recover on the next start)",
            seconds,
        )
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Stop(Exception):
    pass


def _command_keys(data_dir: Path) -> str:
    """The demo's command-signing key pair, kept in the data dir; returns the public key."""
    private_path, public_path = data_dir / "command-key", data_dir / "command-key.pub"
    if not (private_path.exists() and public_path.exists()):
        private, public = generate_keypair()
        private_path.touch(mode=0o600)
        private_path.write_text(private + "\n", encoding="utf-8")
        public_path.write_text(public + "\n", encoding="utf-8")
    return public_path.read_text(encoding="utf-8").strip()


# One demo user per role, so every part of the console and the API can be tried.
DEMO_USERS: tuple[tuple[str, str], ...] = (
    ("admin", "admin"),
    ("commander", "commander"),
    ("duty", "duty_officer"),
    ("maint", "maintainer"),
    ("viewer", "viewer"),
)


def _write_control_config(data_dir: Path, control: ControlSettings) -> Path:
    """The demo control service's settings as a file, for `shelterwatch users ... --config`.

    No secret goes in it: development mode needs no signing key to manage users.
    """
    path = data_dir / "control.yaml"
    doc = {"mode": control.mode, "database_url": control.database_url}
    path.write_text(
        "# Written by `shelterwatch demo`, for `shelterwatch users ... --config` on its data.\n"
        + yaml.safe_dump(doc),
        encoding="utf-8",
    )
    return path


async def _demo_users(control: ControlSettings) -> dict[str, str] | None:
    """Create the demo users on a new database; their passwords, or None if they existed.

    The passwords are random and only their argon2 hashes are stored: the banner shows them
    once, and after that only `shelterwatch users reset-password` gets a new one.
    """
    from control.auth import Accounts, Role, hashing_for
    from control.db import Database

    async with Database(control.database_url) as db:
        await db.upgrade()
        accounts = Accounts(db, hashing_for(control))
        if await accounts.count():
            return None
        passwords: dict[str, str] = {}
        for username, role in DEMO_USERS:
            passwords[username] = secrets.token_urlsafe(12)
            await accounts.create(
                actor="demo",
                username=username,
                password=passwords[username],
                role=Role(role),
                full_name=f"demo {role.replace('_', ' ')}",
            )
        return passwords


# The demo's sites stand in two districts of Hangzhou, a kilometre or so apart. The fleet
# gives them to its sites in turn (gateway configs, so telemetry carries them), and each siren
# post's inventory district is its site's.
_DEMO_DISTRICTS = ("xihu", "shangcheng")


_DISTRICT_NAMES = {"xihu": "西湖区", "shangcheng": "上城区"}


async def _demo_areas(control: ControlSettings, sites: list[dict[str, object]]) -> None:
    """Place the demo's sites in a command area tree (province, city, a county per district),
    so the area views have levels to show. Imported once; a tree someone imported since is
    theirs and stays."""
    from control.areas import Area, AreaStore, AreaTree, Level
    from control.db import Database

    areas = [Area("zj", "浙江省", Level.PROVINCE, None), Area("hz", "杭州市", Level.CITY, "zj")]
    areas += [Area(d, _DISTRICT_NAMES.get(d, d), Level.COUNTY, "hz") for d in _DEMO_DISTRICTS]
    # A site may have several gateways (shelter sensors, a siren bank): one area for each site.
    placed: dict[str, tuple[str, list[str]]] = {}
    for site in sites:
        district = str(site.get("district") or _DEMO_DISTRICTS[0])
        placed.setdefault(str(site["site"]), (district, []))[1].append(str(site["gateway_id"]))
    for n, (code, (district, gateways)) in enumerate(sorted(placed.items()), start=1):
        areas.append(Area(code, f"演示工程 {n:02d}", Level.SITE, district, tuple(gateways)))
    async with Database(control.database_url) as db:
        store = AreaStore(db)
        if (await store.current()).empty:
            await store.replace(AreaTree.build(areas), actor="demo")


async def _demo_sirens(control: ControlSettings, sites: list[dict[str, object]]) -> None:
    """Put the simulated siren posts into the control service's inventory, so the siren
    pages, tests and schedules have something to act on. Idempotent: a restarted demo keeps
    its inventory, and posts a person edited are brought back to the simulator's wiring."""
    from control.db import Database
    from control.sirens.inventory import upsert
    from control.sirens.models import GroupIn, SirenCreate

    posts: list[SirenCreate] = []
    for site in sites:
        devices = site["devices"]
        assert isinstance(devices, list)
        for device in devices:
            if device["profile"] not in ("siren", "siren_relay"):
                continue
            n = len(posts)
            posts.append(
                SirenCreate(
                    id=str(site["site"]),
                    name=f"演示警报点 {n + 1:02d}",
                    site=str(site["site"]),
                    gateway=str(site["gateway_id"]),
                    device=device["id"],
                    district=str(site.get("district") or ""),
                    lat=30.25 + 0.01 * n,
                    lon=120.15 + 0.01 * (n % 3),
                    radius_m=1500.0,
                    profile=device["profile"],
                )
            )
    groups = {
        district: GroupIn(description=f"demo district {district}", districts=[district])
        for district in _DEMO_DISTRICTS
    }
    async with Database(control.database_url) as db:
        await upsert(db, posts, groups)
    log.info("siren inventory: %d simulated siren posts", len(posts))


def _print_banner(
    opts: DemoOptions,
    mqtt: MqttSettings,
    devices: int,
    gateways: int,
    store_url: str,
    passwords: dict[str, str] | None,
    control_config: Path,
    fault_url: str,
) -> None:
    api = f"http://127.0.0.1:{opts.http_port}"
    broker = opts.broker or f"embedded amqtt on mqtt://{mqtt.host}:{mqtt.port}"
    reset = f"shelterwatch users reset-password <name> --config {control_config}"
    if passwords is None:
        names = ", ".join(name for name, _ in DEMO_USERS)
        users = (
            f"demo users       {names} exist already (their passwords were shown on the\n"
            f"                   first start); set a new one with\n                   {reset}"
        )
        viewer_password = "<password>"
    else:
        lines = [f"{name:<10} {passwords[name]:<18} {role}" for name, role in DEMO_USERS]
        users = "demo users       (shown only now; only their hashes are stored)\n" + "\n".join(
            f"                   {line}" for line in lines
        )
        viewer_password = passwords["viewer"]
    print(
        f"""
Shelterwatch demo is running
  MQTT broker      {broker}
  simulated fleet  {opts.shelters} shelters, {opts.sirens} siren posts: {devices} Modbus devices
  gateways         {gateways}, one per site, publishing {mqtt.prefix}/...
  collector        {store_url}
  control service  {api}
  console          {api}/console/   (sign in as a demo user below; ?lang=en for English)
  {users}

Try:
  mosquitto_sub -h {mqtt.host} -p {mqtt.port} -t '{mqtt.prefix}/#' -v
  curl {api}/api/v1/health
  TOKEN=$(curl -s {api}/api/v1/auth/login -H 'Content-Type: application/json' \\
      -d '{{"username": "viewer", "password": "{viewer_password}"}}' \\
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -H "Authorization: Bearer $TOKEN" {api}/api/v1/sites/shelter-01/latest
  shelterwatch sim fault shelter-01 rising_humidity --sim {fault_url}   # then watch alerts

Ctrl-C stops everything.
""",
        flush=True,
    )
