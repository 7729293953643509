"""The role ladder, the permission table and the login rate limiter: pure logic."""

from __future__ import annotations

from control.auth import MINIMUM_ROLE, ROLE_ORDER, LoginRateLimiter, Permission, Role, allows


def test_the_ladder() -> None:
    assert tuple(Role) == ROLE_ORDER
    assert [r.rank for r in ROLE_ORDER] == list(range(len(Role)))
    assert Role.ADMIN.at_least(Role.VIEWER)
    assert Role.VIEWER.at_least(Role.VIEWER)
    assert not Role.DUTY_OFFICER.at_least(Role.COMMANDER)


def test_every_permission_has_a_minimum_role() -> None:
    assert set(MINIMUM_ROLE) == set(Permission)
    assert allows(Role.VIEWER, Permission.SITES_READ)
    assert not allows(Role.COMMANDER, Permission.USERS_MANAGE)
    assert allows(Role.ADMIN, Permission.USERS_MANAGE)
    # What a role holds, every higher role holds too.
    for permission in Permission:
        held = [allows(role, permission) for role in ROLE_ORDER]
        assert held == sorted(held), permission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_is_per_address_over_a_sliding_minute() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(3, clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [None, None, None]
    assert limiter.check("a") == 60.0
    assert limiter.check("b") is None  # another address counts apart
    clock.now += 30
    wait = limiter.check("a")
    assert wait == 30.0 and LoginRateLimiter.retry_after(wait) == "30"
    clock.now += 30.001
    assert limiter.check("a") is None  # the first three left the window
    assert LoginRateLimiter.retry_after(0.2) == "1"


def test_refused_attempts_do_not_extend_the_wait() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(1, clock=clock)
    assert limiter.check("a") is None
    for _ in range(100):
        limiter.check("a")
    clock.now += 60.001
    assert limiter.check("a") is None


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(1, max_clients=10, clock=clock)
    for i in range(100):
        limiter.check(f"10.0.0.{i}")
    assert len(limiter._attempts) == 10
