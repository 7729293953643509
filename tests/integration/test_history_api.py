"""GET /api/v1/sites/{site}/history: a point's history from the store, bucketed for charts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve

from control.auth import Role
from shelterwatch.store import Sample
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


async def test_history_of_a_point_bucketed_and_checked(tmp_path: Path) -> None:
    store_path = tmp_path / "store.db"
    async with SqliteStore(store_path) as store:
        await store.write(
            [
                Sample("ventilation", "s1", "gw", "vent", T0 + i * 1000, {"overpressure": float(i)})
                for i in range(100)
            ]
        )
    settings = control_settings(f"sqlite:///{tmp_path / 'control.db'}", f"sqlite:///{store_path}")
    await create_users(settings, (Role.VIEWER,))
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        auth = bearer(await login(client, "viewer", PASSWORDS[Role.VIEWER]))

        async def get(**params: int | str) -> httpx.Response:
            return await client.get("/api/v1/sites/s1/history", params=params, headers=auth)

        raw = await get(device="vent", point="overpressure", since=T0, until=T0 + 99_000)
        assert raw.status_code == 200, raw.text
        body = raw.json()
        assert (body["kind"], body["since"], body["until"]) == ("ventilation", T0, T0 + 99_000)
        # 99 s over at most 500 points: 198 ms buckets, one sample each.
        assert body["bucket_ms"] == 198
        assert len(body["points"]) == 100
        assert body["points"][0] == [T0 - T0 % 198, 0.0]
        coarse = (
            await get(
                device="vent", point="overpressure", since=T0, until=T0 + 99_999, max_points=10
            )
        ).json()
        assert coarse["bucket_ms"] == 10_000
        assert [p[1] for p in coarse["points"]] == [4.5 + 10 * i for i in range(10)]

        assert (await get(device="vent", point="nope")).status_code == 404
        assert (await get(device="nope", point="overpressure")).status_code == 404
        empty = await get(device="vent", point="overpressure", since=T0 + 5, until=T0 + 5)
        assert (empty.status_code, empty.json()["points"]) == (200, [])
        # More than a year is cut to the last year.
        year = (await get(device="vent", point="overpressure", since=0, until=T0)).json()
        assert year["since"] == T0 - 366 * 86_400_000
        assert (await get(device="vent", point="overpressure", limt=5)).status_code == 422
        assert (await client.get("/api/v1/sites/s1/history?device=vent&point=x")).status_code == 401
