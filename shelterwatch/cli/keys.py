"""`shelterwatch keys ...`: the Ed25519 key pair that signs commands."""

from __future__ import annotations

import typer

from shelterwatch.signing import generate_keypair

app = typer.Typer(help="Command-signing keys.", no_args_is_help=True)


@app.command()
def generate() -> None:
    """Print a new key pair: the private key for the control service
    (SHELTERWATCH_COMMAND_PRIVATE_KEY), the public key for every gateway (commands.public_key)."""
    private, public = generate_keypair()
    typer.echo(f"private (control service, keep secret): {private}")
    typer.echo(f"public  (gateways' commands.public_key): {public}")
