"""Password hashing with argon2id (argon2-cffi), and the password rules.

argon2 is slow on purpose (tens to hundreds of milliseconds at the default parameters), so
the async callers run it in a worker thread: a login must not stall every other request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Hashing",
    "Verified",
    "check_password_rules",
]

MIN_PASSWORD_LENGTH = 12
# argon2 pre-hashes its input, so length costs little; the cap only bounds request bodies.
MAX_PASSWORD_LENGTH = 256


def check_password_rules(password: str) -> None:
    """Raise ValueError with a reason if ``password`` may not be used."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    # Length is the only rule (NIST SP 800-63B): composition rules and banned spaces make
    # people pick worse passwords, not better ones. The API's request models say the same.


@dataclass(frozen=True)
class Verified:
    ok: bool
    # A new hash when the stored one used other parameters than the current ones.
    rehash: str | None = None


@dataclass(frozen=True)
class Hashing:
    """argon2id with the given cost parameters (from ControlSettings.password_hashing)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    @property
    def hasher(self) -> PasswordHasher:
        return _hasher(self.time_cost, self.memory_kib, self.parallelism)

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> Verified:
        hasher = self.hasher
        try:
            hasher.verify(stored_hash, password)
        except VerifyMismatchError:
            return Verified(False)
        except (InvalidHashError, VerificationError):
            # A damaged or foreign hash never matches; it is not the caller's fault.
            return Verified(False)
        if hasher.check_needs_rehash(stored_hash):
            return Verified(True, hasher.hash(password))
        return Verified(True)

    def verify_dummy(self, password: str) -> None:
        """Spend the time a real verification takes, for a username that does not exist.

        Without this, an unknown name answers faster than a wrong password, and the timing
        tells an attacker which accounts exist.
        """
        self.verify(_dummy_hash(self.time_cost, self.memory_kib, self.parallelism), password)


@functools.cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


@functools.cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    # Same parameters as real hashes, so verifying it costs the same.
    return _hasher(time_cost, memory_kib, parallelism).hash("no such user, no such password")
