"""Each service on its own, for real deployments: ``shelterwatch sim|gateway|collector|control``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import uvicorn
import yaml
from pydantic import Field

from shelterwatch.config import MqttSettings, ServiceSettings, load_settings
from shelterwatch.errors import ConfigError
from shelterwatch.store.factory import open_store

__all__ = [
    "SimSettings",
    "run_collector",
    "run_control",
    "run_gateway",
    "run_sim",
    "run_sim_synthetic",
]

log = logging.getLogger(__name__)


class SimSettings(ServiceSettings):
    shelters: Annotated[int, Field(ge=0, le=1000)] = 3
    sirens: Annotated[int, Field(ge=0, le=99)] = 4
    host: str = "127.0.0.1"
    # First Modbus TCP port; devices take consecutive ports. 0 picks free ports.
    base_port: Annotated[int, Field(ge=0, le=65535)] = 15020
    tick_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    seed: int = 1
    # Port of the fault-control endpoint on 127.0.0.1 (`shelterwatch sim fault`); 0 picks a
    # free port, null turns it off.
    control_port: Annotated[int, Field(ge=0, le=65535)] | None = 15019
    # Where to write one gateway settings file per site, for `shelterwatch gateway`.
    gateway_config_dir: Path | None = None
    mqtt: MqttSettings = MqttSettings()
    # Exercise injects from the control service, on {mqtt.prefix}/sim/inject of the `mqtt`
    # broker (firmware_sim.injects); false for a simulator no exercise drives.
    injects: bool = True
    # Platform site -> the simulated sites that play it, where the names differ; a site not
    # named here is the simulated site of that name.
    inject_sites: dict[str, list[str]] = Field(default_factory=dict)


async def run_sim(config: Path | None) -> None:
    from firmware_sim import FaultServer, Fleet, FleetSpec
    from firmware_sim.injects import InjectListener
    from shelterwatch.sim_inject import sim_inject_topic

    settings = load_settings(SimSettings, config)
    spec = FleetSpec(
        shelters=settings.shelters,
        sirens=settings.sirens,
        host=settings.host,
        base_port=settings.base_port,
        tick_s=settings.tick_s,
        seed=settings.seed,
    )
    async with Fleet(spec) as fleet, contextlib.AsyncExitStack() as stack:
        if settings.control_port is not None:
            control = FaultServer(fleet, settings.control_port)
            try:
                await stack.enter_async_context(control)
            except OSError as exc:
                raise ConfigError(
                    f"control_port {settings.control_port}: cannot listen on 127.0.0.1 ({exc})"
                ) from exc
            log.info("fault control on %s (shelterwatch sim fault SITE SCENARIO)", control.url)
        if settings.injects:
            m = settings.mqtt
            await stack.enter_async_context(InjectListener(fleet, m, sites=settings.inject_sites))
            log.info(
                "exercise injects from %s on mqtt://%s:%d",
                sim_inject_topic(m.prefix),
                m.host,
                m.port,
            )
        for d in fleet.devices:
            log.info(
                "simulated %s/%s (%s) on %s:%d unit %d",
                d.site,
                d.device_id,
                d.profile.name,
                d.host,
                d.port,
                d.unit_id,
            )
        if settings.gateway_config_dir is not None:
            out = settings.gateway_config_dir
            out.mkdir(parents=True, exist_ok=True)
            m = settings.mqtt
            for site in fleet.gateway_config(m.host, m.port, m.prefix):
                path = out / f"{site['gateway_id']}.yaml"
                path.write_text(yaml.safe_dump(gateway_yaml(site, m)), encoding="utf-8")
            log.info("wrote gateway settings to %s", out)
        await asyncio.Event().wait()


async def run_sim_synthetic(
    config: Path | None,
    shelters: int,
    rate: float,
    snapshot_s: float,
    connections: int,
    duration_s: float | None,
) -> None:
    """Publish a synthetic fleet to the broker of the sim settings' ``mqtt`` block."""
    from firmware_sim.synthetic import SyntheticSpec, run_synthetic

    settings = load_settings(SimSettings, config)
    spec = SyntheticSpec(
        shelters=shelters,
        rate=rate,
        snapshot_s=snapshot_s,
        connections=connections,
        seed=settings.seed,
    )
    stats = await run_synthetic(spec, settings.mqtt, asyncio.Event(), duration_s=duration_s)
    log.info("synthetic fleet done: %d data messages, %d values", stats.messages, stats.values)


def gateway_yaml(site: dict[str, object], mqtt: MqttSettings) -> dict[str, object]:
    """Gateway settings for one simulated site, in the shape GatewaySettings reads."""
    devices = site["devices"]
    assert isinstance(devices, list)
    # Each gateway logs in as itself (the broker's ACL binds a login to its own topics); its
    # password comes from SHELTERWATCH_MQTT__PASSWORD, never from a generated file.
    login = mqtt.model_dump(exclude_none=True, exclude={"password"})
    if mqtt.username is not None:
        login["username"] = site["gateway_id"]
    district = {"district": site["district"]} if site.get("district") else {}
    return {
        "gateway_id": site["gateway_id"],
        "site": site["site"],
        **district,
        "mqtt": login,
        "devices": [
            {
                "id": d["id"],
                "profile": d["profile"],
                "unit_id": d.get("unit_id", 1),
                "transport": {"type": "tcp", "host": d["host"], "port": d["port"]},
            }
            for d in devices
        ],
    }


async def run_gateway(config: Path | None) -> None:
    from gateway import Gateway, GatewaySettings

    settings = load_settings(GatewaySettings, config)
    await Gateway(settings).run()


async def run_collector(config: Path | None) -> None:
    from collector import Collector, CollectorSettings

    settings = load_settings(CollectorSettings, config)
    async with open_store(settings.store_url) as store:
        await Collector(settings, store).run()


async def run_control(config: Path | None) -> None:
    from control import ControlSettings, create_app
    from control.auth import warn_if_no_users
    from control.db import Database

    settings = load_settings(ControlSettings, config)
    # Say how to get in before serving: a fresh install has no users, and then no route but
    # /health answers. (The app applies the same migrations again at start; that is a no-op.)
    async with Database(settings.database_url) as db:
        if settings.migrate_on_start:
            await db.upgrade()
        await warn_if_no_users(db, settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_config=None
        )
    )
    await server.serve()
