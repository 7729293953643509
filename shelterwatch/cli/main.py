"""The ``shelterwatch`` command: the demo, and each service on its own."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from shelterwatch.errors import ConfigError, ShelterwatchError
from shelterwatch.logs import setup_logging

app = typer.Typer(
    help="Shelterwatch: monitoring and control for civil air-defence shelters and sirens.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; SHELTERWATCH_* variables override"),
]


async def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    # SIGTERM (systemd, docker stop) stops a service as cleanly as Ctrl-C: tasks are
    # cancelled, so a gateway says goodbye on its state topic instead of leaving it to the will.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await main
    except asyncio.CancelledError:
        logging.getLogger("shelterwatch").info("stopped")


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(_until_signal(main))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    except ShelterwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


@app.command()
def demo(
    mqtt_port: Annotated[int, typer.Option(help="port of the embedded MQTT broker")] = 1884,
    http_port: Annotated[int, typer.Option(help="port of the control service")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its data")] = Path(
        "data/demo"
    ),
    shelters: Annotated[int, typer.Option(min=0, max=99)] = 3,
    sirens: Annotated[int, typer.Option(min=0, max=99)] = 4,
    broker: Annotated[
        str | None,
        typer.Option(help="use this broker (mqtt://host:port) instead of the embedded one"),
    ] = None,
) -> None:
    """Run the whole platform on this machine: broker, simulated fleet, gateways, collector and
    control service, on embedded defaults."""
    from shelterwatch.cli.demo import DemoOptions, run_demo

    setup_logging()
    opts = DemoOptions(mqtt_port, http_port, data_dir, shelters, sirens, broker)
    _run(run_demo(opts))


# `sim` runs the fleet when called alone (`shelterwatch sim --config F`, as before it became a
# group) and takes subcommands that reach a running one (`shelterwatch sim fault SITE SCENARIO`).
sim_app = typer.Typer(add_completion=False)
SimUrlOption = Annotated[
    str,
    typer.Option(
        "--sim",
        envvar="SHELTERWATCH_SIM_CONTROL",
        help="fault-control URL of the running simulator (its control_port on 127.0.0.1)",
    ),
]
DEFAULT_SIM_URL = "http://127.0.0.1:15019"  # firmware_sim.control.DEFAULT_CONTROL_URL


@sim_app.callback(invoke_without_command=True)
def sim(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Run a simulated fleet of shelter and siren devices (Modbus TCP servers); `sim fault`
    breaks and repairs a running one, and so do exercise injects on the `mqtt` broker."""
    if ctx.invoked_subcommand is not None:
        return
    from shelterwatch.cli.services import run_sim

    setup_logging()
    _run(run_sim(config))


@sim_app.command("fault")
def sim_fault(
    site: Annotated[str, typer.Argument(help="simulated site, e.g. shelter-01 or siren-02")],
    scenario: Annotated[str, typer.Argument(help="fault scenario, e.g. seal_leak")],
    options: Annotated[
        list[str] | None,
        typer.Argument(help="scenario options as key=value, e.g. rate_kpa_s=0.05"),
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="undo the fault instead")] = False,
    url: SimUrlOption = DEFAULT_SIM_URL,
) -> None:
    """Switch a fault scenario on at a site of the running simulator, or repair it.

    Scenarios: seal_leak, door_jam, filter_clogging, fan_failure, water_leak, rising_humidity,
    siren_battery_decay, siren_amplifier_fault, siren_driver_fault, stuck_sensor, power_loss,
    comm_loss (docs/simulator.md).
    """
    from firmware_sim.control import FaultClient

    parsed: dict[str, object] = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"error: scenario options are key=value, got {item!r}", err=True)
            sys.exit(2)
        parsed[key] = value
    if repair and parsed:
        typer.echo("error: --repair takes no scenario options", err=True)
        sys.exit(2)
    try:
        client = FaultClient(url)
        if repair:
            client.repair(site, scenario)
            typer.echo(f"repaired {scenario} at {site}")
        else:
            fault = client.fault(site, scenario, parsed)
            shown = " ".join(f"{k}={v}" for k, v in fault["options"].items() if v != "")
            typer.echo(f"{scenario} on at {site}" + (f" ({shown})" if shown else ""))
    except (ShelterwatchError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


@sim_app.command("synthetic")
def sim_synthetic(
    shelters: Annotated[int, typer.Option(min=1, max=100_000, help="simulated shelters")] = 1000,
    rate: Annotated[
        float, typer.Option(min=0.001, max=100_000, help="data messages per second, in all")
    ] = 1000.0,
    snapshot_s: Annotated[
        float, typer.Option(min=0.001, max=3600, help="seconds between a device's snapshots")
    ] = 60.0,
    connections: Annotated[int, typer.Option(min=1, max=64, help="MQTT connections")] = 4,
    duration: Annotated[
        float | None, typer.Option(min=0.0, help="seconds to publish; default until stopped")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Publish the MQTT contract for many shelters without Modbus (births, device states, data
    by exception with snapshots), to the broker of the settings' `mqtt` block."""
    from shelterwatch.cli.services import run_sim_synthetic

    setup_logging()
    _run(run_sim_synthetic(config, shelters, rate, snapshot_s, connections, duration))


@sim_app.command("faults")
def sim_faults(url: SimUrlOption = DEFAULT_SIM_URL) -> None:
    """List the active faults of the running simulator, and the scenarios it knows."""
    from firmware_sim.control import FaultClient

    try:
        status = FaultClient(url).status()
    except (ShelterwatchError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    faults = status.get("faults", [])
    typer.echo("active faults:" if faults else "no active faults")
    for fault in faults:
        opts = " ".join(f"{k}={v}" for k, v in fault["options"].items() if v != "")
        typer.echo(f"  {fault['site']:<12} {fault['scenario']:<22} {opts}")
    typer.echo("scenarios:")
    for name, spec in status.get("scenarios", {}).items():
        opts = " ".join(f"{k}={v}" for k, v in spec["options"].items())
        kinds = "/".join(spec["site_kinds"])
        typer.echo(f"  {name:<22} {kinds:<14} {opts}")


@app.command()
def gateway(config: ConfigOption = None) -> None:
    """Run a gateway: poll Modbus devices, publish the MQTT contract."""
    from shelterwatch.cli.services import run_gateway

    setup_logging()
    _run(run_gateway(config))


@app.command()
def collector(config: ConfigOption = None) -> None:
    """Run a collector: MQTT telemetry into the time-series store."""
    from shelterwatch.cli.services import run_collector

    setup_logging()
    _run(run_collector(config))


@app.command()
def control(config: ConfigOption = None) -> None:
    """Run the control service (HTTP API)."""
    from shelterwatch.cli.services import run_control

    setup_logging()
    _run(run_control(config))


def _add_groups() -> None:
    from shelterwatch.cli import areas, audit, dashboards, db, deploy, keys, users

    app.add_typer(sim_app, name="sim")
    app.add_typer(users.app, name="users", help="User accounts of the control service.")
    app.add_typer(areas.app, name="areas", help="Command areas: province, city, county, site.")
    app.add_typer(audit.app, name="audit", help="The audit trail: verify and export.")
    app.add_typer(keys.app, name="keys", help="Command-signing keys.")
    app.add_typer(db.app, name="db", help="The control database.")
    app.add_typer(deploy.app, name="deploy", help="Deployment files (broker logins and ACL).")
    app.add_typer(dashboards.app, name="dashboards", help="Grafana dashboards: check, push.")


_add_groups()

if __name__ == "__main__":
    app()
