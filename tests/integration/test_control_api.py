"""The control service's HTTP API, served by a real uvicorn on loopback, over both stores.

Each test prefills a store through its own store object, creates a viewer in the control
database (SQLite and PostgreSQL), starts the app in-process the way ``shelterwatch demo`` does
(a uvicorn.Server that leaves the signal handlers alone), logs in and talks to it with httpx
over TCP. Sign-in itself is tested in test_auth.py, who may do what in test_role_matrix.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from fastapi.routing import APIRoute
from pydantic import ValidationError
from servers import InfluxServer

from control import ControlSettings, create_app
from control.auth import Role
from shelterwatch.config import ENV_PREFIX, load_settings
from shelterwatch.errors import ConfigError
from shelterwatch.signing import generate_keypair
from shelterwatch.store.base import DeviceStatus, FieldValue, Sample
from shelterwatch.store.factory import open_store
from shelterwatch.store.influx import InfluxStore

pytestmark = pytest.mark.integration

SITE = "shelter-01"
OTHER_SITE = "shelter-02"
GW = "gw-shelter-01"
T0 = 1_700_000_000_000
HEALTH = "/api/v1/health"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # ControlSettings reads SHELTERWATCH_* variables: a developer's shell must not change tests.
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX.upper()):
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", "influx"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL naming an empty store: an SQLite file, or a fresh InfluxDB database."""
    if request.param == "sqlite":
        # tmp_path is absolute, so this is the four-slash (absolute) form.
        yield f"sqlite:///{tmp_path / 'control' / 'store.db'}"
        return
    influxdb: InfluxServer = request.getfixturevalue("influxdb")
    database = f"test_control_{uuid.uuid4().hex[:12]}"
    try:
        yield f"influxdb://127.0.0.1:{influxdb.port}/{database}"
    finally:
        if influxdb.running:
            async with InfluxStore(influxdb.url, database, retries=0) as st:
                await st.drop_database()


VENT_OLD: dict[str, FieldValue] = {
    "overpressure": 30.0,
    "mode": "clean",
    "fan_running": False,
    "fan_hours": 1200.0,
}
VENT_NEW: dict[str, FieldValue] = {
    "overpressure": 41.5,
    "mode": "filtered",
    "fan_running": True,
    "fan_hours": 1234.5,
}
DOOR: dict[str, FieldValue] = {
    "closed": True,
    "locked": False,
    "seal_pressure": 0.5,
    "cycle_count": 1234,
}


async def _prefill(url: str) -> None:
    async with open_store(url) as st:
        await st.write(
            [
                # Newest first: the store, not the write order, must pick the newest.
                Sample("ventilation", SITE, GW, "vent", T0 + 1000, VENT_NEW),
                Sample("ventilation", SITE, GW, "vent", T0, VENT_OLD),
                Sample("blast_door", SITE, GW, "door", T0 + 500, DOOR),
                # Report by exception: only the position changed later.
                Sample("blast_door", SITE, GW, "door", T0 + 2000, {"position": 7}),
                Sample("ventilation", OTHER_SITE, "gw-shelter-02", "vent", T0, VENT_OLD),
            ]
        )
        await st.write_status(
            [
                DeviceStatus(
                    SITE,
                    GW,
                    "vent",
                    "ventilation",
                    T0,
                    True,
                    units={"overpressure": "Pa", "fan_hours": "h"},
                ),
                # An older status replayed late must not replace the newer units.
                DeviceStatus(
                    SITE, GW, "vent", "ventilation", T0 - 5000, True, units={"overpressure": "kPa"}
                ),
                DeviceStatus(
                    SITE,
                    GW,
                    "door",
                    "blast_door",
                    T0,
                    True,
                    units={"seal_pressure": "kPa", "cycle_count": "1", "position": "%"},
                ),
            ]
        )


EXPECTED_LATEST: dict[str, Any] = {
    "site": SITE,
    "devices": {
        "vent": {
            "kind": "ventilation",
            "points": {
                "overpressure": {"value": 41.5, "unit": "Pa", "ts": T0 + 1000},
                "mode": {"value": "filtered", "unit": "", "ts": T0 + 1000},
                "fan_running": {"value": True, "unit": "", "ts": T0 + 1000},
                "fan_hours": {"value": 1234.5, "unit": "h", "ts": T0 + 1000},
            },
        },
        "door": {
            "kind": "blast_door",
            "points": {
                "closed": {"value": True, "unit": "", "ts": T0 + 500},
                "locked": {"value": False, "unit": "", "ts": T0 + 500},
                "seal_pressure": {"value": 0.5, "unit": "kPa", "ts": T0 + 500},
                "cycle_count": {"value": 1234, "unit": "1", "ts": T0 + 500},
                "position": {"value": 7, "unit": "%", "ts": T0 + 2000},
            },
        },
    },
}


@dataclass(frozen=True)
class Api:
    client: httpx.AsyncClient
    token: str  # a viewer's: the least role that reads sites


@pytest.fixture
async def api(store_url: str, database_url: str) -> AsyncIterator[Api]:
    """A viewer's client on a running control service whose store holds the samples above."""
    await _prefill(store_url)
    settings = control_settings(database_url, store_url)
    await create_users(settings, (Role.VIEWER,))
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield Api(client, await login(client, "viewer", PASSWORDS[Role.VIEWER]))


def _auth(token: str) -> dict[str, str]:
    return bearer(token)


def _assert_unauthorized(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers.get("www-authenticate") == "Bearer"


async def test_health_is_open(api: Api) -> None:
    resp = await api.client.get(HEALTH)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]


@pytest.mark.parametrize("path", ["/api/v1/sites", f"/api/v1/sites/{SITE}/latest"])
async def test_sites_need_the_token(api: Api, path: str) -> None:
    _assert_unauthorized(await api.client.get(path))
    token = api.token
    wrong = ("A" if token[0] != "A" else "B") + token[1:]
    _assert_unauthorized(await api.client.get(path, headers=_auth(wrong)))
    _assert_unauthorized(await api.client.get(path, headers=_auth(token[:-1])))  # a prefix
    _assert_unauthorized(await api.client.get(path, headers=_auth(token + "x")))  # an extension
    _assert_unauthorized(await api.client.get(path, headers={"Authorization": "Bearer"}))
    # The right token under another scheme is no bearer token.
    _assert_unauthorized(await api.client.get(path, headers={"Authorization": f"Basic {token}"}))
    _assert_unauthorized(await api.client.get(path, headers={"X-Api-Token": token}))
    ok = await api.client.get(path, headers=_auth(api.token))
    assert ok.status_code == 200, ok.text


async def test_sites_lists_every_site(api: Api) -> None:
    resp = await api.client.get("/api/v1/sites", headers=_auth(api.token))
    assert resp.status_code == 200
    assert resp.json() == [SITE, OTHER_SITE]


async def test_latest_has_the_newest_values_with_units(api: Api) -> None:
    resp = await api.client.get(f"/api/v1/sites/{SITE}/latest", headers=_auth(api.token))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body == EXPECTED_LATEST
    # JSON keeps the types apart: == alone would let True equal 1 and 1234 equal 1234.0.
    vent = body["devices"]["vent"]["points"]
    assert vent["fan_running"]["value"] is True
    assert type(vent["mode"]["value"]) is str
    assert type(vent["overpressure"]["value"]) is float
    assert type(vent["fan_hours"]["value"]) is float
    door = body["devices"]["door"]["points"]
    assert door["locked"]["value"] is False
    assert type(door["cycle_count"]["value"]) is int
    assert type(door["position"]["value"]) is int


async def test_latest_of_an_unknown_site_is_404(api: Api) -> None:
    resp = await api.client.get("/api/v1/sites/shelter-99/latest", headers=_auth(api.token))
    assert resp.status_code == 404
    assert "shelter-99" in resp.json()["detail"]
    # The longest valid slug is a well-formed name too: unknown, not invalid.
    resp = await api.client.get(f"/api/v1/sites/{'a' * 64}/latest", headers=_auth(api.token))
    assert resp.status_code == 404


@pytest.mark.parametrize(
    "site",
    [
        "Shelter%2001",  # "Shelter 01": upper case and a space
        "shelter-01%0A",  # a trailing newline, which Python's `$` would let through
        "-shelter",
        "shelter.01",
        "a" * 65,
    ],
)
async def test_latest_refuses_an_invalid_site_name(api: Api, site: str) -> None:
    resp = await api.client.get(f"/api/v1/sites/{site}/latest", headers=_auth(api.token))
    assert resp.status_code == 422, resp.text
    # Without the token the answer is 401 all the same: validation reveals nothing first.
    _assert_unauthorized(await api.client.get(f"/api/v1/sites/{site}/latest"))


def _example_path(path: str) -> str:
    """The OpenAPI path with every ``{param}`` replaced by a valid slug."""
    out = path
    while "{" in out:
        start = out.index("{")
        out = out[:start] + SITE + out[out.index("}", start) + 1 :]
    return out


PUBLIC = {("get", HEALTH), ("post", "/api/v1/auth/login")}


async def test_every_route_but_health_and_login_needs_a_login(
    store_url: str, database_url: str
) -> None:
    """A route added later cannot ship without authentication unnoticed.

    (Which role may call what is test_role_matrix.py's table; this is the floor under it.)
    """
    await _prefill(store_url)
    settings = control_settings(database_url, store_url)
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        spec = (await client.get("/openapi.json")).json()
        checked = []
        for path, item in spec["paths"].items():
            for method in item:
                if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                    continue
                url = _example_path(path)
                resp = await client.request(method.upper(), url)
                if (method, path) in PUBLIC:
                    assert resp.status_code not in (401, 403), f"{method} {path}"
                    continue
                assert resp.status_code == 401, (
                    f"{method.upper()} {path} answered {resp.status_code}"
                )
                assert resp.headers.get("www-authenticate") == "Bearer"
                wrong = await client.request(method.upper(), url, headers=_auth("x" * 43))
                assert wrong.status_code == 401, f"{method.upper()} {path} with a wrong token"
                forged = await client.request(
                    method.upper(), url, headers={"Cookie": f"{settings.cookie_name}={'x' * 43}"}
                )
                assert forged.status_code == 401, f"{method.upper()} {path} with a wrong cookie"
                checked.append(f"{method.upper()} {path}")
        assert "GET /api/v1/sites" in checked
        assert "GET /api/v1/sites/{site}/latest" in checked
        assert "GET /api/v1/users" in checked

    # Routes hidden from the spec (include_in_schema=False) would escape the loop above.
    app = create_app(settings)
    api_routes = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    in_spec = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert api_routes <= in_spec, f"routes missing from the OpenAPI spec: {api_routes - in_spec}"


async def test_without_users_nobody_gets_in(tmp_path: Path) -> None:
    settings = ControlSettings(
        mode="development",
        store_url=f"sqlite:///{tmp_path / 'dev.db'}",
        database_url=f"sqlite:///{tmp_path / 'control.db'}",
    )
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        assert (await client.get(HEALTH)).status_code == 200
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": 'Bearer ""'}):
            _assert_unauthorized(await client.get("/api/v1/sites", headers=headers))
        refused = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "admin"}
        )
        assert refused.status_code == 401


def test_production_needs_a_signing_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValidationError, match="command_private_key"):
        ControlSettings(mode="production", store_url=url)
    with pytest.raises(ValidationError, match="command_private_key"):
        ControlSettings(store_url=url)  # production is the default
    # Through the loader (YAML + environment), the same refusal is a ConfigError.
    with pytest.raises(ConfigError, match="command_private_key"):
        load_settings(ControlSettings, store_url=url)
    # Development may run without one (it then signs no commands).
    assert ControlSettings(mode="development", store_url=url).mode == "development"


def test_the_shared_api_token_is_gone(tmp_path: Path) -> None:
    # People sign in now; a leftover api_token in a settings file is an error, not ignored.
    with pytest.raises(ValidationError, match="api_token"):
        ControlSettings(  # type: ignore[call-arg]
            mode="development", store_url=f"sqlite:///{tmp_path / 'x.db'}", api_token="x" * 32
        )


def test_production_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_keypair()[0]
    monkeypatch.setenv(f"{ENV_PREFIX}COMMAND_PRIVATE_KEY", key)
    settings = load_settings(ControlSettings, store_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert settings.mode == "production"
    assert settings.command_private_key.get_secret_value() == key
    assert key not in repr(settings)
