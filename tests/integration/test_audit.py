"""The audit trail on SQLite and PostgreSQL: concurrent appends, tampering found by editing
the database directly, the CLI, the HTTP routes with their roles, and the middleware."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, FastAPI, Request
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

from control import ControlSettings
from control.api import audit as audit_api
from control.api.deps import CurrentUser
from control.audit import (
    AuditRecord,
    ExportFormat,
    Head,
    append_audit,
    iter_records,
    parse_export,
    read_head,
    row_hash,
    verify_database,
    verify_rows,
)
from control.audit.middleware import AuditMiddleware
from control.auth import Accounts, Role, Sessions, hashing_for
from control.db import Database
from control.settings import PasswordHashing
from shelterwatch.cli.main import app as cli_app

pytestmark = pytest.mark.integration


async def records(db: Database) -> list[AuditRecord]:
    return [r async for r in iter_records(db, chunk=7)]


async def fill(db: Database, n: int) -> list[AuditRecord]:
    for i in range(n):
        await append_audit(db, actor=f"u{i}", action="test.fill", target=f"t{i}", params={"i": i})
    return await records(db)


async def sql(db: Database, statement: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(statement), params)


# -- appending --------------------------------------------------------------------------------


async def test_append_returns_the_stored_row(database: Database) -> None:
    first = await append_audit(
        database, actor="李雷", action="a", target="t", params={"b": 1, "a": "值"}, result="ok"
    )
    second = await append_audit(database, actor="x" * 500, action="b")
    stored = await records(database)
    assert [r.seq for r in stored] == [1, 2]
    assert stored[0] == AuditRecord(
        1, first.ts_ms, "李雷", "a", "t", '{"a":"值","b":1}', "ok", "0" * 64, first.hash
    )
    # Cut to the column width before hashing, so PostgreSQL takes it and the hash still holds.
    assert stored[1].actor == "x" * 128 and stored[1].prev_hash == first.hash == stored[1 - 1].hash
    assert second.hash == row_hash(stored[1])
    assert (await verify_database(database)).ok


async def test_concurrent_appends_on_one_engine_and_two_replicas(
    database: Database, database_url: str
) -> None:
    await asyncio.gather(*(append_audit(database, actor="a", action=f"one.{i}") for i in range(50)))
    async with Database(database_url) as replica_a, Database(database_url) as replica_b:
        await asyncio.gather(
            *(
                append_audit(replica, actor=name, action=f"two.{i}")
                for i in range(25)
                for name, replica in (("a", replica_a), ("b", replica_b))
            )
        )
    stored = await records(database)
    assert [r.seq for r in stored] == list(range(1, 101))
    assert len({r.action + r.actor for r in stored}) == 100
    result = await verify_database(database, chunk=9)
    assert (result.ok, result.checked) == (True, 100)


# -- tampering, by SQL straight into the database ---------------------------------------------


async def test_edited_field(database: Database) -> None:
    await fill(database, 10)
    await sql(database, "UPDATE audit_log SET result = 'denied' WHERE seq = 4")
    result = await verify_database(database, chunk=3)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)


async def test_deleted_row(database: Database) -> None:
    await fill(database, 10)
    await sql(database, "DELETE FROM audit_log WHERE seq = 6")
    result = await verify_database(database, chunk=4)
    assert (result.first_bad_seq, result.checked) == (6, 5)
    assert "row 6 is missing" in result.reason


async def test_inserted_forged_row(database: Database) -> None:
    rows = await fill(database, 10)
    # Make room at seq 5 (in two steps: PostgreSQL checks the key row by row), then insert a
    # row that links to row 4 and carries a correct hash of its own.
    await sql(database, "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
    await sql(database, "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
    forged = dataclasses.replace(
        rows[4], actor="mallory", action="users.create", prev_hash=rows[3].hash, hash=""
    )
    forged = dataclasses.replace(forged, hash=row_hash(forged))
    await sql(
        database,
        "INSERT INTO audit_log (seq, ts_ms, actor, action, target, params, result, prev_hash,"
        " hash) VALUES (:seq, :ts_ms, :actor, :action, :target, :params, :result, :prev_hash,"
        " :hash)",
        **dataclasses.asdict(forged),
    )
    result = await verify_database(database, chunk=5)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "row 5 was inserted" in result.reason


async def test_swapped_rows(database: Database) -> None:
    rows = await fill(database, 10)
    for seq, source in ((3, rows[7]), (8, rows[2])):
        values = dataclasses.asdict(source) | {"seq": seq}
        await sql(
            database,
            "UPDATE audit_log SET ts_ms = :ts_ms, actor = :actor, action = :action,"
            " target = :target, params = :params, result = :result, prev_hash = :prev_hash,"
            " hash = :hash WHERE seq = :seq",
            **values,
        )
    result = await verify_database(database)
    assert (result.ok, result.first_bad_seq) == (False, 3)


async def test_deleted_tail_is_caught_only_against_a_recorded_head(database: Database) -> None:
    await fill(database, 10)
    head = await read_head(database)
    assert head is not None and head.seq == 10
    await sql(database, "DELETE FROM audit_log WHERE seq = 10")
    assert (await verify_database(database)).ok  # the chain alone cannot see it
    result = await verify_database(database, expect_head=head)
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "truncated" in result.reason


# -- the command line ---------------------------------------------------------------------------


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "control.yaml"
    path.write_text(json.dumps({"mode": "development", "database_url": database_url}))
    return path


async def _cli(*args: str) -> tuple[int, str, str]:
    # The CLI runs its own event loop (asyncio.run): give it a thread of its own.
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["audit", *args])
    return result.exit_code, result.stdout, result.stderr


async def test_cli_verify_and_export(database: Database, database_url: str, tmp_path: Path) -> None:
    config = str(_config(tmp_path, database_url))
    code, out, _ = await _cli("verify", "--config", config)
    assert (code, out.strip()) == (0, "audit trail ok: 0 rows verified (the trail is empty)")
    rows = await fill(database, 5)
    head = Head(5, rows[-1].hash)

    code, out, _ = await _cli("verify", "--config", config, "--expect-head", str(head))
    assert code == 0, out
    assert f"5 rows verified, head {head}" in out

    for fmt in ExportFormat:
        output = tmp_path / f"audit.{fmt.value}"
        code, _, err = await _cli("export", "--config", config, "-f", fmt.value, "-o", str(output))
        assert code == 0, err
        assert str(head) in err
        exported = list(parse_export(io.StringIO(output.read_text("utf-8"), newline=""), fmt))
        assert exported == rows
        code, out, _ = await _cli("verify", "--input", str(output), "--expect-head", str(head))
        assert code == 0, out
    code, out, _ = await _cli("export", "--config", config)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2, 3, 4, 5]

    await sql(database, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    code, _, err = await _cli("verify", "--config", config)
    assert code == 1
    assert "BROKEN at row 2" in err
    await sql(database, "UPDATE audit_log SET actor = :a WHERE seq = 2", a=rows[1].actor)
    await sql(database, "DELETE FROM audit_log WHERE seq = 5")
    code, _, err = await _cli("verify", "--config", config, "--expect-head", str(head))
    assert code == 1
    assert "BROKEN at row 5" in err

    code, _, err = await _cli("verify", "--config", config, "--expect-head", "5:nothex")
    assert code == 2
    code, _, err = await _cli("export", "--config", config, "--format", "xml")
    assert code == 2


# -- the HTTP routes and the middleware ---------------------------------------------------------


def _with_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    # What uvicorn does with the lifespan state: a fresh copy in every request's scope.
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["state"] = dict(state)
        await app(scope, receive, send)

    return wrapped


def _test_app() -> FastAPI:
    app = FastAPI()
    app.include_router(audit_api.router)

    @app.post("/api/v1/things/{site}/{thing}")
    async def change(
        site: str,
        thing: str,
        body: Annotated[dict[str, Any], Body()],
        request: Request,
        user: CurrentUser,
    ) -> dict[str, str]:
        # What authentication does for the middleware: say who is calling.
        request.state.user = user
        if body.get("explode"):
            raise RuntimeError("boom")
        return {"ok": site}

    app.add_middleware(AuditMiddleware)
    return app


@pytest.fixture
async def client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = ControlSettings(
        mode="development",
        database_url=database.url,
        password_hashing=PasswordHashing(time_cost=1, memory_kib=64, parallelism=1),
    )
    accounts = Accounts(database, hashing_for(settings))
    sessions = Sessions(database, settings)
    tokens: dict[str, str] = {}
    for role in (Role.VIEWER, Role.COMMANDER, Role.ADMIN):
        name = role.value.replace("_", "-")
        await accounts.create(actor="test", username=name, password="pw-" + "x" * 12, role=role)
        outcome = await sessions.login(name, "pw-" + "x" * 12, client="test")
        assert outcome.token is not None
        tokens[role.value] = outcome.token
    app = _with_state(_test_app(), {"db": database, "settings": settings})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        _TOKENS[http] = tokens
        try:
            yield http
        finally:
            del _TOKENS[http]


# Each test client's bearer token per role.
_TOKENS: dict[httpx.AsyncClient, dict[str, str]] = {}


def _auth(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_TOKENS[client][role]}"}


async def test_audit_routes_need_commander_or_admin(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/export"):
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=_auth(client, "viewer"))).status_code == 403
        for role in ("commander", "admin"):
            assert (await client.get(path, headers=_auth(client, role))).status_code == 200


async def test_middleware_records_mutations(client: httpx.AsyncClient, database: Database) -> None:
    before = (await read_head(database)) or Head(0, "")
    commander = _auth(client, "commander")
    body = {"password": "hunter2", "nested": {"api_token": "t"}, "n": 1}
    assert (await client.post("/api/v1/things/s-1/door", json=body, headers=commander)).is_success
    assert (await client.post("/api/v1/things/s-2/fan", json={"n": 2})).status_code == 401
    response = await client.post("/api/v1/things/s-3/x", json={"explode": 1}, headers=commander)
    assert response.status_code == 500
    assert (await client.delete("/nowhere")).status_code == 404
    assert (await client.get("/api/v1/audit", headers=commander)).is_success  # not recorded

    rows = [r async for r in iter_records(database, after_seq=before.seq)]
    assert [(r.actor, r.action, r.target, json.loads(r.params), r.result) for r in rows] == [
        (
            "commander",
            "http.POST /api/v1/things/{site}/{thing}",
            "site=s-1,thing=door",
            {"n": 1, "nested": {"api_token": "***"}, "password": "***"},
            "200",
        ),
        (
            "anonymous",
            "http.POST /api/v1/things/{site}/{thing}",
            "site=s-2,thing=fan",
            {"n": 2},
            "401",
        ),
        (
            "commander",
            "http.POST /api/v1/things/{site}/{thing}",
            "site=s-3,thing=x",
            {"explode": 1},
            "500",
        ),
        ("anonymous", "http.DELETE (no route)", "/nowhere", {}, "404"),
    ]
    assert "hunter2" not in "".join(r.params for r in await records(database))
    assert (await verify_database(database)).ok


async def test_list_verify_and_export_routes(client: httpx.AsyncClient, database: Database) -> None:
    await fill(database, 12)
    stored = await records(database)
    total, head = len(stored), stored[-1]
    auth = _auth(client, "admin")

    page = (await client.get("/api/v1/audit?limit=3", headers=auth)).json()
    assert [e["seq"] for e in page["entries"]] == [total - 2, total - 1, total]
    assert page["head"] == {"seq": total, "hash": head.hash}
    page = (await client.get("/api/v1/audit?after_seq=2&limit=4", headers=auth)).json()
    assert [e["seq"] for e in page["entries"]] == [3, 4, 5, 6]
    assert page["next_after_seq"] == 6
    assert page["entries"][0] == dataclasses.asdict(stored[2])
    assert (await client.get("/api/v1/audit?limit=0", headers=auth)).status_code == 422

    report = (await client.get("/api/v1/audit/verify", headers=auth)).json()
    assert report == {
        "ok": True,
        "checked": total,
        "first_bad_seq": None,
        "reason": "",
        "head": {"seq": total, "hash": head.hash},
    }
    # The spec's pattern for SEQ:HASH refuses a malformed head before the route runs.
    bad = await client.get("/api/v1/audit/verify?expect_head=1:zz", headers=auth)
    assert bad.status_code == 422

    for fmt in ExportFormat:
        response = await client.get(f"/api/v1/audit/export?format={fmt.value}", headers=auth)
        assert response.headers["content-type"].startswith(fmt.media_type.split(";")[0])
        exported = list(parse_export(io.StringIO(response.text, newline=""), fmt))
        assert exported[:total] == stored
        assert verify_rows(exported).ok

    await sql(database, "DELETE FROM audit_log WHERE seq = :s", s=total)
    anchored = f"/api/v1/audit/verify?expect_head={head.seq}:{head.hash}"
    report = (await client.get(anchored, headers=auth)).json()
    assert (report["ok"], report["first_bad_seq"]) == (False, total)
