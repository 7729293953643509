"""`shelterwatch audit ...`: verify the control service's audit chain, and export it.

``verify`` exits 0 when the chain is intact, 1 when it is broken (the message names the first
bad sequence number), and 2 when it cannot read the settings, the database or the input.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from shelterwatch.config import load_settings
from shelterwatch.errors import ShelterwatchError

if TYPE_CHECKING:
    from control.audit import ExportFormat, Head, VerifyResult
    from control.db import Database

app = typer.Typer(help="The audit trail: verify and export.", no_args_is_help=True)

T = TypeVar("T")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="the control service's settings file")
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _with_database(config: Path | None, action: Callable[[Database], Awaitable[T]]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    from control import ControlSettings
    from control.db import Database

    try:
        settings = load_settings(ControlSettings, config)
    except ShelterwatchError as exc:
        raise _fail(f"configuration error: {exc}", 2) from exc

    async def main() -> T:
        async with Database(settings.database_url) as db:
            return await action(db)

    try:
        return asyncio.run(main())
    except (SQLAlchemyError, OSError, ShelterwatchError) as exc:
        raise _fail(f"error: cannot read the audit trail: {exc}", 2) from exc


def _parse_head(text: str | None) -> Head | None:
    from control.audit import parse_head

    if text is None:
        return None
    try:
        return parse_head(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expect-head") from exc


def _verify_file(path: Path, fmt: ExportFormat, head: Head | None) -> VerifyResult:
    from control.audit import ChainVerifier, parse_export

    verifier = ChainVerifier(head)
    try:
        with path.open(encoding="utf-8", newline="") as lines:
            for record in parse_export(lines, fmt):
                if not verifier.feed(record):
                    break
    except (OSError, ValueError) as exc:
        raise _fail(f"error: cannot read {path}: {exc}", 2) from exc
    return verifier.finish()


@app.command()
def verify(
    config: ConfigOption = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="SEQ:HASH",
            help="a head recorded earlier (by verify or export): also detects rows cut from "
            "the end of the chain",
        ),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="verify this export (.jsonl or .csv) instead of the database",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Recompute the hash chain and report the first row that was edited, removed, inserted
    or moved."""
    from control.audit import ExportFormat, verify_database

    head = _parse_head(expect_head)
    if input_file is not None:
        fmt = ExportFormat.csv if input_file.suffix.lower() == ".csv" else ExportFormat.jsonl
        result = _verify_file(input_file, fmt, head)
    else:
        result = _with_database(config, lambda db: verify_database(db, expect_head=head))
    if not result.ok:
        raise _fail(
            f"audit trail BROKEN at row {result.first_bad_seq}: {result.reason}"
            f" ({result.checked} rows before it verified)",
            1,
        )
    where = f", head {result.head}" if result.head is not None else " (the trail is empty)"
    anchored = f", matches the recorded head {head}" if head is not None else ""
    typer.echo(f"audit trail ok: {result.checked} rows verified{where}{anchored}")


@app.command()
def export(
    config: ConfigOption = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="jsonl (JSON Lines) or csv")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="write here instead of standard output", dir_okay=False
        ),
    ] = None,
) -> None:
    """Write every row, oldest first, for an inspector. Each field is exactly as hashed, so
    `audit verify --input FILE` checks the export on its own."""
    from control.audit import ExportFormat, export_chunks, read_head

    try:
        fmt = ExportFormat(format)
    except ValueError as exc:
        raise typer.BadParameter("use jsonl or csv", param_hint="--format") from exc

    async def run(db: Database) -> Head | None:
        # Read first: every row up to this head is in the export, whatever is appended meanwhile.
        head = await read_head(db)
        if output is None:
            async for piece in export_chunks(db, fmt):
                sys.stdout.buffer.write(piece.encode("utf-8"))
            sys.stdout.buffer.flush()
            return head
        # newline="": the CSV writer already chose "\n"; no translation on any platform.
        with output.open("w", encoding="utf-8", newline="") as out:
            async for piece in export_chunks(db, fmt):
                out.write(piece)
        return head

    head = _with_database(config, run)
    if head is not None:
        typer.echo(
            f"exported through row {head.seq}; head {head} (keep it to detect truncation later)",
            err=True,
        )
