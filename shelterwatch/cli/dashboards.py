"""``shelterwatch dashboards``: check the Grafana dashboards offline, push them to a Grafana."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from shelterwatch.errors import ShelterwatchError

app = typer.Typer(no_args_is_help=True, add_completion=False)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="the dashboards folder (default: the repository's dashboards/, or "
        "SHELTERWATCH_DASHBOARDS_DIR)",
    ),
]


@app.command()
def check(
    directory: DirOption = None,
    site: Annotated[
        list[str] | None, typer.Option(help="site values to expand $site with (default: All)")
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option(help="device values to expand $device with (default: All)")
    ] = None,
    range_: Annotated[
        str, typer.Option("--range", help="relative time range: now-6h, now-30m, now-7d")
    ] = "now-6h",
) -> None:
    """Validate every dashboard JSON and print each panel's query as InfluxDB receives it."""
    from shelterwatch.dashboards.check import render_check

    try:
        typer.echo(render_check(directory, site or [], device or [], range_, time.time()))
    except ShelterwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


@app.command()
def push(
    url: Annotated[
        str, typer.Option(envvar="GRAFANA_URL", help="Grafana's address, e.g. http://grafana:3000")
    ],
    token: Annotated[
        str | None,
        typer.Option(envvar="GRAFANA_TOKEN", help="service-account token (editor or admin)"),
    ] = None,
    user: Annotated[str | None, typer.Option(help="basic-auth user instead of a token")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GRAFANA_PASSWORD", help="basic-auth password")
    ] = None,
    folder: Annotated[str, typer.Option(help="folder title to put the dashboards in")] = (
        "Shelterwatch"
    ),
    folder_uid: Annotated[str, typer.Option(help="folder uid (created if missing)")] = (
        "shelterwatch"
    ),
    datasource: Annotated[
        bool,
        typer.Option(
            "--datasource/--no-datasource",
            help="also create or update the InfluxDB data source (SW_INFLUX_* variables)",
        ),
    ] = True,
    directory: DirOption = None,
) -> None:
    """Upload the data source and every dashboard to a running Grafana, overwriting by uid."""
    from shelterwatch.dashboards.load import load_dashboards, load_datasource
    from shelterwatch.dashboards.push import connect
    from shelterwatch.dashboards.push import push as push_all

    try:
        dashboards = load_dashboards(directory)
        ds = load_datasource(directory)
        api = connect(url, token=token, user=user, password=password)
        report = push_all(
            api,
            dashboards,
            ds,
            folder_uid=folder_uid,
            folder_title=folder,
            with_datasource=datasource,
        )
    except ShelterwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for line in report.lines:
        typer.echo(line)
    typer.echo(f"pushed {len(dashboards)} dashboard(s) to {url}")
