"""Signing in and out, sessions, lockout, the login rate limit and user management, against a
real uvicorn over SQLite and PostgreSQL. (Who may call which route: test_role_matrix.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from control_helpers import (
    FAST_HASHING,
    PASSWORDS,
    bearer,
    control_settings,
    create_users,
    login,
    serve,
)
from sqlalchemy import select, update
from typer.testing import CliRunner

from control import ControlSettings
from control.auth import Role, warn_if_no_users
from control.auth.tokens import hash_token
from control.db import ApiToken, Database, User
from shelterwatch.cli.main import app as cli

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
USERS = "/api/v1/users"
ADMIN_PW = PASSWORDS[Role.ADMIN]
VIEWER_PW = PASSWORDS[Role.VIEWER]
REFUSED = {"detail": "wrong username or password"}


@dataclass
class Service:
    client: httpx.AsyncClient
    settings: ControlSettings

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.client.post(LOGIN, json={"username": username, "password": password})

    async def token(self, role: Role) -> str:
        return await login(self.client, role.value, PASSWORDS[role])

    def cookie(self, token: str) -> dict[str, str]:
        # By hand: httpx's jar (rightly) keeps a Secure cookie off plain http://127.0.0.1.
        return {"Cookie": f"{self.settings.cookie_name}={token}"}


@contextlib.asynccontextmanager
async def running(tmp_path: Path, database_url: str, **overrides: Any) -> AsyncIterator[Service]:
    settings = control_settings(database_url, f"sqlite:///{tmp_path / 'store.db'}", **overrides)
    await create_users(settings)
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield Service(client, settings)


@pytest.fixture
async def svc(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    async with running(tmp_path, database_url) as service:
        yield service


async def test_login_gives_a_token_and_a_console_cookie(svc: Service) -> None:
    before = time.time_ns() // 1_000_000
    resp = await svc.login("viewer", VIEWER_PW)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    token = body["access_token"]
    assert body["token_type"] == "bearer"
    assert len(token) >= 40
    ttl_ms = svc.settings.token_ttl_s * 1000
    assert before + ttl_ms <= body["expires_ms"] <= time.time_ns() // 1_000_000 + ttl_ms
    assert body["user"]["username"] == "viewer" and body["user"]["role"] == "viewer"
    assert VIEWER_PW not in resp.text and "argon2" not in resp.text

    cookie = resp.headers["set-cookie"]
    parts = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert cookie.startswith(f"{svc.settings.cookie_name}={token};")
    assert {"httponly", "secure", "path", "max-age"} <= parts
    assert "samesite=strict" in cookie.lower()

    for headers in (bearer(token), svc.cookie(token)):
        me = await svc.client.get(ME, headers=headers)
        assert me.status_code == 200, me.text
        assert me.json() == {"username": "viewer", "full_name": "", "role": "viewer"}


async def test_only_the_token_hash_is_stored(svc: Service, database_url: str) -> None:
    token = await svc.token(Role.VIEWER)
    async with Database(database_url) as db, db.session() as s:
        rows = (await s.execute(select(ApiToken))).scalars().all()
    assert hash_token(token) in {r.token_hash for r in rows}
    assert all(token not in (r.token_hash, str(r.user_id)) for r in rows)


async def test_development_cookie_is_not_secure(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url, mode="development") as svc:
        resp = await svc.login("viewer", VIEWER_PW)
        assert resp.status_code == 200
        assert "secure" not in resp.headers["set-cookie"].lower()


async def test_refusals_say_nothing_about_the_account(svc: Service) -> None:
    admin = bearer(await svc.token(Role.ADMIN))
    assert (await svc.client.post(f"{USERS}/maintainer/disable", headers=admin)).status_code == 200
    answers = [
        await svc.login("nobody", "whatever-password"),  # no such user
        await svc.login("viewer", VIEWER_PW + "x"),  # wrong password
        await svc.login("maintainer", PASSWORDS[Role.MAINTAINER]),  # disabled, right password
    ]
    for resp in answers:
        assert resp.status_code == 401
        assert resp.json() == REFUSED
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "set-cookie" not in resp.headers


async def test_logout_ends_the_bearer_session(svc: Service) -> None:
    token = await svc.token(Role.VIEWER)
    other = await svc.token(Role.VIEWER)
    resp = await svc.client.post(LOGOUT, headers=bearer(token))
    assert resp.status_code == 204
    assert svc.settings.cookie_name in resp.headers.get("set-cookie", "")  # deleted
    assert (await svc.client.get(ME, headers=bearer(token))).status_code == 401
    assert (await svc.client.post(LOGOUT, headers=bearer(token))).status_code == 401
    # Only that session: another login of the same user goes on.
    assert (await svc.client.get(ME, headers=bearer(other))).status_code == 200


async def test_cookie_requests_that_change_things_must_be_same_origin(svc: Service) -> None:
    token = await svc.token(Role.VIEWER)
    cookie = svc.cookie(token)
    # Reading with the cookie alone is fine: SameSite=Strict and no side effects.
    assert (await svc.client.get(ME, headers=cookie)).status_code == 200
    # A bare cross-site form post carries the cookie but cannot add the header.
    refused = await svc.client.post(LOGOUT, headers=cookie)
    assert refused.status_code == 403, refused.text
    foreign = cookie | {"X-Requested-With": "fetch", "Origin": "https://evil.example"}
    assert (await svc.client.post(LOGOUT, headers=foreign)).status_code == 403
    assert (await svc.client.get(ME, headers=cookie)).status_code == 200  # still signed in
    host = svc.client.base_url.netloc.decode()
    ours = cookie | {"X-Requested-With": "fetch", "Origin": f"http://{host}"}
    resp = await svc.client.post(LOGOUT, headers=ours)
    assert resp.status_code == 204
    assert "max-age=0" in resp.headers["set-cookie"].lower()
    assert (await svc.client.get(ME, headers=cookie)).status_code == 401


async def test_the_bearer_token_needs_no_origin_check(svc: Service) -> None:
    # A script is no browser: no cookie, no CSRF, no header to add.
    token = await svc.token(Role.VIEWER)
    assert (await svc.client.post(LOGOUT, headers=bearer(token))).status_code == 204


async def test_an_expired_token_is_refused(svc: Service, database_url: str) -> None:
    token = await svc.token(Role.VIEWER)
    async with Database(database_url) as db, db.session() as s:
        await s.execute(
            update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(expires_ms=1)
        )
        await s.commit()
    assert (await svc.client.get(ME, headers=bearer(token))).status_code == 401


async def test_lockout_after_failures_in_a_row(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url, login_max_failures=3, lockout_s=1.5) as svc:
        session = await svc.token(Role.VIEWER)
        for _ in range(3):
            assert (await svc.login("viewer", "not-the-password")).status_code == 401
        # Locked: even the right password gets the same vague answer.
        locked = await svc.login("viewer", VIEWER_PW)
        assert (locked.status_code, locked.json()) == (401, REFUSED)
        admin = bearer(await svc.token(Role.ADMIN))
        users = {u["username"]: u for u in (await svc.client.get(USERS, headers=admin)).json()}
        assert users["viewer"]["locked_until_ms"] > time.time_ns() // 1_000_000
        # A lock stops new logins; sessions already open go on (disable ends those).
        assert (await svc.client.get(ME, headers=bearer(session))).status_code == 200
        await asyncio.sleep(1.6)
        assert (await svc.login("viewer", VIEWER_PW)).status_code == 200


async def test_a_success_resets_the_failure_count(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url, login_max_failures=3) as svc:
        for _ in range(3):
            assert (await svc.login("viewer", "not-the-password")).status_code == 401
            assert (await svc.login("viewer", "not-the-password")).status_code == 401
            assert (await svc.login("viewer", VIEWER_PW)).status_code == 200


async def test_reset_password_lifts_a_lockout(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url, login_max_failures=2, lockout_s=3600) as svc:
        for _ in range(2):
            await svc.login("viewer", "not-the-password")
        assert (await svc.login("viewer", VIEWER_PW)).status_code == 401
        admin = bearer(await svc.token(Role.ADMIN))
        new = "a-brand-new-password"
        resp = await svc.client.put(
            f"{USERS}/viewer/password", json={"password": new}, headers=admin
        )
        assert resp.status_code == 204, resp.text
        assert (await svc.login("viewer", new)).status_code == 200


async def test_login_rate_limit_per_address(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url, login_rate_per_min=3) as svc:
        first = await svc.login("viewer", VIEWER_PW)
        assert first.status_code == 200
        assert (await svc.login("nobody", "x")).status_code == 401
        assert (await svc.login("admin", "x")).status_code == 401
        for username, password in (("viewer", VIEWER_PW), ("nobody", "x")):
            resp = await svc.login(username, password)
            assert resp.status_code == 429, resp.text
            assert 1 <= int(resp.headers["retry-after"]) <= 60
        # The limit is on logins only; a signed-in client goes on.
        me = await svc.client.get(ME, headers=bearer(first.json()["access_token"]))
        assert me.status_code == 200


async def test_a_changed_hash_cost_upgrades_the_hash_at_login(
    tmp_path: Path, database_url: str
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    await create_users(control_settings(database_url, store_url))  # hashed with t=1
    stronger = control_settings(
        database_url, store_url, password_hashing=FAST_HASHING | {"time_cost": 2}
    )
    async with (
        serve(stronger) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        assert await login(client, "viewer", VIEWER_PW)
    async with Database(database_url) as db, db.session() as s:
        rows = await s.execute(select(User.username, User.password_hash))
        hashes = {name: value for name, value in rows}
    assert hashes["viewer"].split("$")[3] == "m=64,t=2,p=1"
    assert hashes["admin"].split("$")[3] == "m=64,t=1,p=1"  # no login: not touched yet


async def test_user_management(svc: Service) -> None:
    admin = bearer(await svc.token(Role.ADMIN))
    http = svc.client
    new = {"username": "ops.1", "full_name": "值班 1", "role": "maintainer"}
    pw = "ops-first-password"
    created = await http.post(USERS, json=new | {"password": pw}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "maintainer" and created.json()["active"] is True
    again = await http.post(USERS, json=new | {"password": pw}, headers=admin)
    assert again.status_code == 409
    for bad in ({"password": "short"}, {"username": "Ops", "password": pw}):
        assert (await http.post(USERS, json=new | bad, headers=admin)).status_code == 422
    listed = (await http.get(USERS, headers=admin)).json()
    assert [u["username"] for u in listed] == sorted(
        ["admin", "commander", "duty_officer", "maintainer", "ops.1", "viewer"]
    )
    assert all("password_hash" not in u for u in listed)

    ops = bearer(await login(http, "ops.1", pw))
    # A role change applies to open sessions at once.
    resp = await http.put(f"{USERS}/ops.1/role", json={"role": "duty_officer"}, headers=admin)
    assert resp.status_code == 200 and resp.json()["role"] == "duty_officer"
    assert (await http.get(ME, headers=ops)).json()["role"] == "duty_officer"

    # A reset ends every session and retires the old password.
    new_pw = "ops-second-password"
    resp = await http.put(f"{USERS}/ops.1/password", json={"password": new_pw}, headers=admin)
    assert resp.status_code == 204
    assert (await http.get(ME, headers=ops)).status_code == 401
    assert (await svc.login("ops.1", pw)).status_code == 401
    ops = bearer(await login(http, "ops.1", new_pw))

    resp = await http.post(f"{USERS}/ops.1/disable", headers=admin)
    assert resp.status_code == 200 and resp.json()["active"] is False
    assert (await http.get(ME, headers=ops)).status_code == 401
    assert (await svc.login("ops.1", new_pw)).status_code == 401
    assert (await http.post(f"{USERS}/ops.1/enable", headers=admin)).json()["active"] is True
    assert (await svc.login("ops.1", new_pw)).status_code == 200

    for method, path, body in (
        ("PUT", f"{USERS}/ghost/role", {"role": "admin"}),
        ("PUT", f"{USERS}/ghost/password", {"password": new_pw}),
        ("POST", f"{USERS}/ghost/disable", None),
    ):
        resp = await http.request(method, path, json=body, headers=admin)
        assert resp.status_code == 404, (method, path, resp.text)


async def test_the_last_admin_cannot_be_removed(svc: Service) -> None:
    admin = bearer(await svc.token(Role.ADMIN))
    http = svc.client
    demote = await http.put(f"{USERS}/admin/role", json={"role": "viewer"}, headers=admin)
    assert demote.status_code == 409, demote.text
    assert (await http.post(f"{USERS}/admin/disable", headers=admin)).status_code == 409
    # With a second admin, the first may step down.
    resp = await http.put(f"{USERS}/commander/role", json={"role": "admin"}, headers=admin)
    assert resp.status_code == 200
    demote = await http.put(f"{USERS}/admin/role", json={"role": "viewer"}, headers=admin)
    assert demote.status_code == 200
    assert (await http.get(USERS, headers=admin)).status_code == 403  # a viewer now


async def test_no_users_logs_how_to_create_an_admin(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ControlSettings(mode="development", database_url=database.url)
    with caplog.at_level(logging.WARNING, logger="control.auth"):
        assert await warn_if_no_users(database, settings) is True
    assert "shelterwatch users create" in caplog.text
    caplog.clear()
    async with database.session() as s:
        s.add(
            User(
                username="a",
                password_hash="x",
                role="admin",
                created_ms=1,
                password_changed_ms=1,
            )
        )
        await s.commit()
    assert await warn_if_no_users(database, settings) is False
    assert not caplog.text


async def test_the_users_command(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "control.yaml"
    config.write_text(
        yaml.safe_dump(
            {"mode": "development", "database_url": database_url, "password_hashing": FAST_HASHING}
        ),
        encoding="utf-8",
    )
    runner = CliRunner()

    async def users(*args: str, stdin: str | None = None) -> tuple[int, str]:
        # In a thread: the command runs its own event loop.
        result = await asyncio.to_thread(
            runner.invoke, cli, ["users", *args, "--config", str(config)], input=stdin
        )
        return result.exit_code, result.output

    pw = "cli-admin-password"
    assert await users(
        "create", "root", "--role", "admin", "--password-stdin", stdin=pw + "\n"
    ) == (
        0,
        "created root: admin in every area, active\n",
    )
    # From a prompt, typed twice; a mismatch is asked again.
    code, out = await users(
        "create",
        "ann",
        "--full-name",
        "Ann",
        stdin="ann-password-1\nann-password-X\nann-password-1\nann-password-1\n",
    )
    assert code == 0, out
    assert "created ann (Ann): viewer in every area, active" in out
    assert pw not in out and "ann-password-1" not in out  # hidden input
    code, out = await users("create", "ann", "--password-stdin", stdin=pw + "\n")
    assert (code, "exists" in out) == (1, True)
    code, out = await users("create", "bob", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 12" in out
    code, out = await users("create", "bob", "--role", "king", "--password-stdin", stdin=pw)
    assert code == 2 and "king" in out

    assert (await users("set-role", "ann", "commander"))[0] == 0
    assert (await users("disable", "ann"))[0] == 0
    code, out = await users("list")
    assert out.splitlines() == [
        "ann (Ann): commander in every area, disabled",
        "root: admin in every area, active",
    ]
    code, out = await users("disable", "root")
    assert code == 1 and "last active admin" in out
    reset = await users("reset-password", "ann", "--password-stdin", stdin="ann-new-pass-2\n")
    assert reset[0] == 0, reset

    async with running(tmp_path, database_url) as svc:
        assert (await svc.login("root", pw)).status_code == 200
        assert (await svc.login("ann", "ann-new-pass-2")).status_code == 401  # disabled
        assert (await users("enable", "ann"))[0] == 0
        assert (await svc.login("ann", "ann-new-pass-2")).status_code == 200
