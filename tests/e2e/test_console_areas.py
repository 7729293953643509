"""Command areas in the console, in real Chromium (see conftest.py for the rig): a county
user's fleet view holds only the county's sites, and their city sees both counties rolled up
and narrows the fleet to one of them.

The rig's two shelters and two siren posts are placed in two counties of one city.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import Rig
from control_helpers import PASSWORDS
from playwright.async_api import Page, expect

from control.auth import Role

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

AREAS = """\
areas:
  - code: sd
    name: 山东省
    level: province
    children:
      - code: qd
        name: 青岛市
        level: city
        children:
          - code: qd-shinan
            name: 市南区
            level: county
            children:
              - {code: shelter-01, name: 市南一号工程, level: site, gateways: [gw-shelter-01]}
              - {code: siren-01, name: 人民广场警报点, level: site, gateways: [gw-siren-01]}
          - code: qd-laoshan
            name: 崂山区
            level: county
            children:
              - {code: shelter-02, name: 崂山一号工程, level: site, gateways: [gw-shelter-02]}
              - {code: siren-02, name: 江边警报点, level: site, gateways: [gw-siren-02]}
"""
COUNTY_USER = ("viewer.qd-shinan", Role.VIEWER, "qd-shinan")
CITY_USER = ("commander.qd", Role.COMMANDER, "qd")


@pytest_asyncio.fixture(loop_scope="module", scope="module", autouse=True)
async def _placed(rig: Rig) -> None:
    admin = rig.tokens[Role.ADMIN]
    resp = await rig.api.put(
        "/api/v1/areas", json={"format": "yaml", "content": AREAS}, headers=admin
    )
    assert resp.status_code == 200, resp.text
    for username, role, area in (COUNTY_USER, CITY_USER):
        body = {"username": username, "role": role.value, "password": PASSWORDS[role], "area": area}
        resp = await rig.api.post("/api/v1/users", json=body, headers=admin)
        assert resp.status_code == 201, resp.text


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _close_contexts(rig: Rig) -> AsyncIterator[None]:
    yield
    for context in rig.contexts:
        await context.close()
    rig.contexts.clear()


def no_errors(page: Page) -> None:
    errors: list[str] = page.errors  # type: ignore[attr-defined]
    assert not errors, f"browser console errors (CSP violations, script errors): {errors}"


async def _sign_in(rig: Rig, username: str, role: Role) -> Page:
    page = await rig.page()
    await page.goto("/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORDS[role])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/fleet")
    return page


async def test_a_county_users_fleet_shows_only_its_countys_sites(rig: Rig) -> None:
    username, role, _area = COUNTY_USER
    page = await _sign_in(rig, username, role)
    rows = page.locator("#fleet-table tbody tr[data-site]")
    await expect(rows).to_have_count(2)
    await expect(page.locator("tr[data-site='shelter-01']")).to_contain_text("市南一号工程")
    await expect(page.locator("tr[data-site='siren-01']")).to_be_visible()
    # The neighbour's sites are not there, nor offered anywhere on the page.
    await expect(page.locator("tr[data-site='shelter-02']")).to_have_count(0)
    await expect(page.locator("tr[data-site='siren-02']")).to_have_count(0)
    body = await page.content()
    for word in ("shelter-02", "siren-02", "崂山", "qd-laoshan", "south"):
        assert word not in body, word
    # Its area in the header; the area filter starts at its own county; no rolled-up lines.
    await expect(page.locator("#user-area")).to_have_text("市南区")
    await expect(page.locator("#area-filter option")).to_have_text(
        ["我的全部区域", "市南区 (区县)"]
    )
    await expect(page.locator("#area-rollup")).to_have_count(0)
    await rig.shot(page, "areas-county-fleet")
    no_errors(page)


async def test_a_city_user_sees_its_counties_rolled_up_and_narrows_to_one(rig: Rig) -> None:
    username, role, _area = CITY_USER
    page = await _sign_in(rig, username, role)
    await expect(page.locator("#fleet-table tbody tr[data-site]")).to_have_count(4)
    rollup = page.locator("#area-rollup tbody tr")
    await expect(rollup).to_have_count(2)
    # The seeded critical alert at shelter-01 counts for 市南区 only.
    await expect(page.locator("#area-rollup tr[data-area='qd-shinan']")).to_contain_text("严重 1")
    await expect(page.locator("#area-rollup tr[data-area='qd-laoshan']")).not_to_contain_text(
        "严重"
    )
    # The audit trail is for people who act in every area: a city commander has no link.
    await expect(page.locator("nav a[href='/console/audit']")).to_have_count(0)

    await page.click("#area-rollup a >> text=崂山区")
    await page.wait_for_url("**/console/fleet?area=qd-laoshan")
    await expect(page.locator("#fleet-table tbody tr[data-site]")).to_have_count(2)
    await expect(page.locator("tr[data-site='shelter-02']")).to_be_visible()
    await expect(page.locator("tr[data-site='shelter-01']")).to_have_count(0)
    await expect(page.locator("#area-trail a")).to_have_text(["青岛市"])
    await expect(page.locator("#area-trail [aria-current]")).to_have_text("崂山区")
    await rig.shot(page, "areas-city-county")
    no_errors(page)
