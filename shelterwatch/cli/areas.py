"""`shelterwatch areas ...`: the command area tree, from the command line.

``import`` puts a YAML or CSV tree in force as a new revision (all or nothing; the import is
audited with the actor ``cli:<operating-system user>``), ``show`` prints the tree in force,
and ``export`` writes it as a file that imports again.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from shelterwatch.config import load_settings
from shelterwatch.errors import ShelterwatchError

if TYPE_CHECKING:
    from control.areas import AreaStore, AreaTree

app = typer.Typer(help="Command areas: province, city, county, site.", no_args_is_help=True)

T = TypeVar("T")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="the control service's settings file")
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _run(config: Path | None, action: Callable[[AreaStore], Awaitable[T]]) -> T:
    from control import ControlSettings
    from control.areas import AreaStore
    from control.db import Database

    settings = load_settings(ControlSettings, config)

    async def main() -> T:
        async with Database(settings.database_url) as db:
            if settings.migrate_on_start:
                await db.upgrade()
            return await action(AreaStore(db))

    try:
        return asyncio.run(main())
    except ShelterwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _format(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "yaml"


@app.command("import")
def import_tree(
    path: Annotated[Path, typer.Argument(help="a .yaml/.yml or .csv area file")],
    config: ConfigOption = None,
) -> None:
    """Put the file's tree in force (it replaces the whole tree)."""
    from control.areas import parse_areas

    try:
        tree = parse_areas(path.read_text(encoding="utf-8"), fmt=_format(path))
    except (OSError, ShelterwatchError) as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
        raise typer.Exit(1) from exc
    stored = _run(config, lambda store: store.replace(tree, actor=_actor()))
    typer.echo(f"area tree revision {stored.revision} in force: {len(stored.areas)} areas")


def _show(tree: AreaTree) -> list[str]:
    lines = []
    for area in tree.walk(tree.root_code()):
        depth = len(tree.ancestors(area.code))
        gateways = f" [{', '.join(area.gateways)}]" if area.gateways else ""
        lines.append(f"{'  ' * depth}{area.code}  {area.name} ({area.level}){gateways}")
    return lines


@app.command()
def show(config: ConfigOption = None) -> None:
    """Print the tree in force."""
    tree = _run(config, lambda store: store.current())
    if tree.empty:
        typer.echo("no area tree yet: every user acts everywhere; `shelterwatch areas import`")
        return
    typer.echo(f"revision {tree.revision}")
    for line in _show(tree):
        typer.echo(line)


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="where to write: .csv for CSV, else YAML")],
    config: ConfigOption = None,
) -> None:
    """Write the tree in force to a file that imports again."""
    from control.areas import dump_csv, dump_yaml

    tree = _run(config, lambda store: store.current())
    text = dump_csv(tree) if _format(path) == "csv" else dump_yaml(tree)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {len(tree.areas)} areas to {path}")
