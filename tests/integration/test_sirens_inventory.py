"""The siren inventory over the live API: CRUD, groups, filters, CSV/YAML round trips, and a
bad import that names its row and column and imports nothing. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve

from control.auth import Role

pytestmark = pytest.mark.integration


def siren(n: int, gateway: str = "gw-a", district: str = "north", **kw: Any) -> dict[str, Any]:
    return {
        "id": f"siren-{n:02d}",
        "name": f"Siren post {n} 北门",
        "site": f"post-{n:02d}",
        "gateway": gateway,
        "device": f"siren{n}",
        "district": district,
        "lat": 36.06 + n / 1000,
        "lon": 120.38,
        "radius_m": 800.0,
        "profile": "siren" if n % 2 else "siren_relay",
        "enabled": True,
        **kw,
    }


async def _clients(tmp_path: Path, database_url: str) -> tuple[Any, Any]:
    settings = control_settings(
        database_url, f"sqlite:///{tmp_path / 'store.db'}", command_client_id="inv-test"
    )
    await create_users(settings, (Role.COMMANDER, Role.VIEWER))
    return settings, None


async def test_inventory_crud_groups_and_filters(tmp_path: Path, database_url: str) -> None:
    settings, _ = await _clients(tmp_path, database_url)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        cmd = bearer(await login(client, "commander", PASSWORDS[Role.COMMANDER]))
        viewer = bearer(await login(client, "viewer", PASSWORDS[Role.VIEWER]))
        for n, district in ((1, "north"), (2, "north"), (3, "south")):
            resp = await client.post(
                "/api/v1/sirens", json=siren(n, district=district), headers=cmd
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["flagged"] is False and resp.json()["last_test"] is None
        # One controller drives one post; an id is taken once.
        dup = await client.post("/api/v1/sirens", json=siren(9, device="siren1"), headers=cmd)
        assert dup.status_code == 409 and "gw-a/siren1" in dup.json()["detail"]
        assert (await client.post("/api/v1/sirens", json=siren(1), headers=cmd)).status_code == 409
        # Viewers read, never write.
        assert (
            await client.post("/api/v1/sirens", json=siren(4), headers=viewer)
        ).status_code == 403

        north = await client.get("/api/v1/sirens", params={"district": "north"}, headers=viewer)
        assert [s["id"] for s in north.json()] == ["siren-01", "siren-02"]

        group = {"name": "harbour", "members": ["siren-03"], "districts": ["north"]}
        resp = await client.post("/api/v1/siren-groups", json=group, headers=cmd)
        assert resp.status_code == 201, resp.text
        assert resp.json()["sirens"] == ["siren-01", "siren-02", "siren-03"]
        bad = await client.post(
            "/api/v1/siren-groups", json={"name": "x", "members": ["nope"]}, headers=cmd
        )
        assert bad.status_code == 404 and "nope" in bad.json()["detail"]
        assert (
            await client.post(
                "/api/v1/siren-groups", json={"name": "all", "districts": ["a"]}, headers=cmd
            )
        ).status_code == 409
        in_group = await client.get(
            "/api/v1/sirens", params={"group": "harbour", "limit": 2}, headers=viewer
        )
        assert [s["id"] for s in in_group.json()] == ["siren-01", "siren-02"]
        assert (
            await client.get("/api/v1/sirens", params={"group": "nope"}, headers=viewer)
        ).status_code == 404

        # A disabled siren is flagged, and still listed.
        update = siren(2, district="north", enabled=False)
        del update["id"]
        resp = await client.put("/api/v1/sirens/siren-02", json=update, headers=cmd)
        assert resp.status_code == 200 and resp.json()["flagged"] is True
        assert resp.json()["flag_reason"] == "disabled"
        flagged = await client.get("/api/v1/sirens", params={"flagged": "true"}, headers=viewer)
        assert [s["id"] for s in flagged.json()] == ["siren-02"]

        groups = await client.get("/api/v1/siren-groups", headers=viewer)
        assert [g["name"] for g in groups.json()] == ["all", "harbour"]
        assert groups.json()[0]["sirens"] == ["siren-01", "siren-02", "siren-03"]

        deleted = await client.delete("/api/v1/sirens/siren-03", headers=cmd)
        assert deleted.json() == {"id": "siren-03", "removed_from_groups": ["harbour"]}
        assert (await client.get("/api/v1/sirens/siren-03", headers=viewer)).status_code == 404
        harbour = await client.get("/api/v1/siren-groups/harbour", headers=viewer)
        assert harbour.json()["members"] == [] and harbour.json()["sirens"] == [
            "siren-01",
            "siren-02",
        ]
        assert (await client.delete("/api/v1/siren-groups/harbour", headers=cmd)).status_code == 204
        assert (await client.get("/api/v1/siren-groups/harbour", headers=viewer)).status_code == 404


async def test_csv_and_yaml_round_trip_and_a_bad_row_imports_nothing(
    tmp_path: Path, database_url: str
) -> None:
    settings, _ = await _clients(tmp_path, database_url)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        cmd = bearer(await login(client, "commander", PASSWORDS[Role.COMMANDER]))
        for n in range(1, 6):
            gw = "gw-a" if n <= 3 else "gw-b"
            resp = await client.post("/api/v1/sirens", json=siren(n, gateway=gw), headers=cmd)
            assert resp.status_code == 201
        await client.post(
            "/api/v1/siren-groups",
            json={"name": "east", "description": "东区", "members": ["siren-04", "siren-05"]},
            headers=cmd,
        )
        csv_text = (
            await client.get("/api/v1/sirens/export", params={"format": "csv"}, headers=cmd)
        ).text
        yaml_resp = await client.get(
            "/api/v1/sirens/export", params={"format": "yaml"}, headers=cmd
        )
        assert yaml_resp.headers["content-type"].startswith("application/yaml")
        before = (await client.get("/api/v1/sirens", headers=cmd)).json()
        groups_before = (await client.get("/api/v1/siren-groups", headers=cmd)).json()

        # A bad row: named by row and column, and nothing at all is written.
        lines = csv_text.splitlines()
        lines[3] = lines[3].replace("800.0", "far")
        lines.append("siren-99,New post,post-99,gw-c,siren99,west,36.1,120.4,500,siren,true")
        bad = await client.post(
            "/api/v1/sirens/import",
            json={"format": "csv", "content": "\n".join(lines)},
            headers=cmd,
        )
        assert bad.status_code == 422, bad.text
        assert "row 4, column radius_m" in bad.json()["detail"]
        assert "nothing was imported" in bad.json()["detail"]
        assert (await client.get("/api/v1/sirens/siren-99", headers=cmd)).status_code == 404
        bad_yaml = await client.post(
            "/api/v1/sirens/import",
            json={"format": "yaml", "content": "sirens:\n  - {id: x}\n"},
            headers=cmd,
        )
        assert bad_yaml.status_code == 422 and "row 1, column name" in bad_yaml.json()["detail"]

        # Delete everything, then import each export: the same inventory comes back.
        for fmt, text in (("csv", csv_text), ("yaml", yaml_resp.text)):
            for item in before:
                await client.delete(f"/api/v1/sirens/{item['id']}", headers=cmd)
            await client.delete("/api/v1/siren-groups/east", headers=cmd)
            resp = await client.post(
                "/api/v1/sirens/import", json={"format": fmt, "content": text}, headers=cmd
            )
            assert resp.status_code == 200, resp.text
            after = (await client.get("/api/v1/sirens", headers=cmd)).json()
            strip = ("created", "updated")
            assert [{k: v for k, v in s.items() if k not in strip} for s in after] == [
                {k: v for k, v in s.items() if k not in strip} for s in before
            ], fmt
            if fmt == "yaml":
                groups = (await client.get("/api/v1/siren-groups", headers=cmd)).json()
                assert [(g["name"], g["description"], g["sirens"]) for g in groups] == [
                    (g["name"], g["description"], g["sirens"]) for g in groups_before
                ]
        # Importing again updates in place.
        again = await client.post(
            "/api/v1/sirens/import", json={"format": "csv", "content": csv_text}, headers=cmd
        )
        assert again.json()["created"] == 0 and again.json()["updated"] == 5
