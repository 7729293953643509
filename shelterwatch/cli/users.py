"""`shelterwatch users ...`: the control service's user accounts, from the command line.

This is how the first admin comes to exist, and how an admin who is locked out gets back in.
Passwords are read from a prompt (typed twice) or, for scripts, from standard input with
``--password-stdin``; never from the command line, where ``ps`` and shell history would keep
them. Every change is audited with the actor ``cli:<operating-system user>``.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from shelterwatch.config import load_settings
from shelterwatch.errors import ShelterwatchError

if TYPE_CHECKING:
    from control.auth import Accounts, Role, UserInfo

app = typer.Typer(help="User accounts of the control service.", no_args_is_help=True)

T = TypeVar("T")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="the control service's settings file")
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="read the password from the first line of stdin"),
]
_ROLES = "viewer, maintainer, duty_officer, commander or admin"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. in a container with a bare uid
        return "cli:unknown"


def _run(config: Path | None, action: Callable[[Accounts], Awaitable[T]]) -> T:
    from control import ControlSettings
    from control.auth import Accounts, hashing_for
    from control.db import Database

    settings = load_settings(ControlSettings, config)

    async def main() -> T:
        async with Database(settings.database_url) as db:
            # Same rule as the service: a first `users create` may come before the first start.
            if settings.migrate_on_start:
                await db.upgrade()
            return await action(Accounts(db, hashing_for(settings)))

    try:
        return asyncio.run(main())
    except ShelterwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


def _role(value: str) -> Role:
    from control.auth import Role as Roles

    try:
        return Roles(value)
    except ValueError:
        typer.echo(f"error: role {value!r}: use {_ROLES}", err=True)
        raise typer.Exit(2) from None


def _show(info: UserInfo) -> str:
    state = "active" if info.active else "disabled"
    if info.locked_until_ms is not None:
        state += f", locked until {info.locked_until_ms} ms"
    name = f" ({info.full_name})" if info.full_name else ""
    area = f" in {info.area}" if info.area else " in every area"
    return f"{info.username}{name}: {info.role.value}{area}, {state}"


async def _checked_area(accounts: Accounts, area: str | None) -> str | None:
    """An area must exist in the tree in force (``shelterwatch areas import``)."""
    if area is None:
        return None
    from control.areas import AreaStore

    tree = await AreaStore(accounts.db).current()
    if area not in tree.areas:
        raise ShelterwatchError(
            f"no area {area!r} in the area tree (revision {tree.revision}); "
            "`shelterwatch areas show` lists them"
        )
    return area


@app.command()
def create(
    username: Annotated[str, typer.Argument(help="login name: a-z, 0-9, '_', '.', '-'")],
    role: Annotated[str, typer.Option(help=_ROLES)] = "viewer",
    full_name: Annotated[str, typer.Option(help="the person's name, for people")] = "",
    area: Annotated[
        str | None, typer.Option(help="the command area the user acts in; left out: every area")
    ] = None,
    config: ConfigOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a user (the first one should be an admin)."""
    chosen = _role(role)
    password = _password(password_stdin)

    async def make(a: Accounts) -> UserInfo:
        return await a.create(
            actor=_actor(),
            username=username,
            password=password,
            role=chosen,
            full_name=full_name,
            area=await _checked_area(a, area),
        )

    info = _run(config, make)
    typer.echo(f"created {_show(info)}")


@app.command("set-area")
def set_area(
    username: str,
    area: Annotated[str, typer.Argument(help="an area code, or 'all' for every area")],
    config: ConfigOption = None,
) -> None:
    """Move a user to another command area (it applies to their next request)."""
    wanted = None if area == "all" else area

    async def move(a: Accounts) -> UserInfo:
        return await a.set_area(
            actor=_actor(), username=username, area=await _checked_area(a, wanted)
        )

    info = _run(config, move)
    typer.echo(f"changed {_show(info)}")


@app.command("reset-password")
def reset_password(
    username: str, config: ConfigOption = None, password_stdin: PasswordStdin = False
) -> None:
    """Set a new password; also lifts a lockout and ends the user's sessions."""
    password = _password(password_stdin)
    info = _run(
        config, lambda a: a.reset_password(actor=_actor(), username=username, password=password)
    )
    typer.echo(f"new password set for {_show(info)}")


@app.command("list")
def list_users(config: ConfigOption = None) -> None:
    """List every user with role and state."""
    users = _run(config, lambda a: a.list())
    for info in users:
        typer.echo(_show(info))
    if not users:
        typer.echo("no users; create an admin with `shelterwatch users create NAME --role admin`")


@app.command("set-role")
def set_role(username: str, role: str, config: ConfigOption = None) -> None:
    """Change a user's role (it applies to their open sessions at once)."""
    chosen = _role(role)
    info = _run(config, lambda a: a.set_role(actor=_actor(), username=username, role=chosen))
    typer.echo(f"changed {_show(info)}")


@app.command()
def disable(username: str, config: ConfigOption = None) -> None:
    """Refuse the user's logins and end their sessions."""
    info = _run(config, lambda a: a.set_active(actor=_actor(), username=username, active=False))
    typer.echo(f"disabled {_show(info)}")


@app.command()
def enable(username: str, config: ConfigOption = None) -> None:
    """Let a disabled user log in again."""
    info = _run(config, lambda a: a.set_active(actor=_actor(), username=username, active=True))
    typer.echo(f"enabled {_show(info)}")
