"""`shelterwatch db ...`: the control database's schema."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shelterwatch.config import load_settings

app = typer.Typer(help="The control database.", no_args_is_help=True)


@app.command()
def upgrade(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="control settings")] = None,
) -> None:
    """Apply every migration to the control database (run before starting new replicas)."""
    from control import ControlSettings
    from control.db import Database

    settings = load_settings(ControlSettings, config)

    async def run() -> None:
        async with Database(settings.database_url) as db:
            await db.upgrade()

    asyncio.run(run())
    typer.echo(f"database at {settings.database_url.split('@')[-1]} is up to date")
