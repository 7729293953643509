"""Password hashing and rules (argon2id), without a database."""

from __future__ import annotations

import pytest

from control.auth import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Hashing
from control.auth.passwords import check_password_rules

CHEAP = Hashing(time_cost=1, memory_kib=64, parallelism=1)
PW = "correct horse battery"


def test_hash_and_verify() -> None:
    stored = CHEAP.hash(PW)
    assert stored.startswith("$argon2id$") and PW not in stored
    assert CHEAP.hash(PW) != stored  # salted
    assert CHEAP.verify(stored, PW).ok
    assert CHEAP.verify(stored, PW).rehash is None
    assert not CHEAP.verify(stored, PW + " ").ok
    assert not CHEAP.verify(stored, "").ok


def test_changed_parameters_ask_for_a_rehash() -> None:
    stored = CHEAP.hash(PW)
    stronger = Hashing(time_cost=2, memory_kib=128, parallelism=1)
    verified = stronger.verify(stored, PW)
    assert verified.ok and verified.rehash is not None
    assert "$m=128,t=2,p=1$" in verified.rehash
    assert stronger.verify(verified.rehash, PW).rehash is None
    # A wrong password is never rehashed.
    assert stronger.verify(stored, "wrong").rehash is None


@pytest.mark.parametrize("stored", ["", "x", "$argon2id$garbage", "plain text password"])
def test_a_damaged_hash_never_matches(stored: str) -> None:
    assert not CHEAP.verify(stored, PW).ok
    assert not CHEAP.verify(stored, stored).ok


def test_the_dummy_verification_runs_and_matches_nothing() -> None:
    CHEAP.verify_dummy(PW)
    CHEAP.verify_dummy("")


def test_rules() -> None:
    check_password_rules("x" * MIN_PASSWORD_LENGTH)
    check_password_rules("x" * MAX_PASSWORD_LENGTH)
    check_password_rules(" spaces are fine ")
    check_password_rules("密码也可以是中文的密码好的")
    with pytest.raises(ValueError, match="at least"):
        check_password_rules("x" * (MIN_PASSWORD_LENGTH - 1))
    with pytest.raises(ValueError, match="at most"):
        check_password_rules("x" * (MAX_PASSWORD_LENGTH + 1))
