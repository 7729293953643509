"""Signed commands: Ed25519 over a canonical encoding of the command envelope.

The control service holds the private key and signs; each gateway holds the public key and
verifies, so a stolen gateway login or a rogue MQTT client cannot forge a command. The
signature covers every field of the envelope except ``sig`` itself: id, device, action,
params, issue and expiry times, and the actor.

Canonical encoding: JSON with sorted keys, no whitespace, UTF-8, non-ASCII kept as is. Keys
travel as base64 of their 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shelterwatch.contract import CommandRequest
from shelterwatch.errors import ConfigError

__all__ = [
    "canonical_bytes",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "sign_command",
    "verify_command",
]


def canonical_bytes(command: CommandRequest) -> bytes:
    # Absent and null are the same field: a third-party signer need not spell out nulls.
    doc = command.model_dump(mode="json", exclude={"sig"}, exclude_none=True)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_command(command: CommandRequest, key: Ed25519PrivateKey) -> CommandRequest:
    sig = base64.b64encode(key.sign(canonical_bytes(command))).decode()
    return command.model_copy(update={"sig": sig})


def verify_command(command: CommandRequest, key: Ed25519PublicKey) -> bool:
    try:
        sig = base64.b64decode(command.sig, validate=True)
        key.verify(sig, canonical_bytes(command))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) key pair, each as base64 of the raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw_private = private.private_bytes_raw()
    return base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"{what} must be 32 bytes (base64 of a raw Ed25519 key), got {len(raw)}")
    return raw


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw32(text, "the command public key"))


def load_private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw32(text, "the command private key"))
