"""Work orders in the console, in real Chromium (see conftest.py for the rig): a maintainer
goes from the fleet view to a site's orders, sees the overdue one marked, closes it with a
note and sees its history; a viewer sees the orders but no way to close one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from conftest import Rig
from playwright.async_api import Page, expect

from control.auth import Role

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

DAY_MS = 86_400_000


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _close_contexts(rig: Rig) -> AsyncIterator[None]:
    yield
    for context in rig.contexts:
        await context.close()
    rig.contexts.clear()


def no_errors(page: Page) -> None:
    errors: list[str] = page.errors  # type: ignore[attr-defined]
    assert not errors, f"browser console errors (CSP violations, script errors): {errors}"


async def _order(rig: Rig, site: str, title: str, due_ms: int) -> dict[str, Any]:
    resp = await rig.api.post(
        "/api/v1/work-orders",
        json={"site": site, "title": title, "assignee": "wang", "due_ms": due_ms},
        headers=rig.tokens[Role.MAINTAINER],
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_a_maintainer_closes_an_overdue_work_order_with_a_note(rig: Rig) -> None:
    now = time.time_ns() // 1_000_000
    late = await _order(rig, "shelter-01", "Cycle the protective door", now - 2 * DAY_MS)
    ahead = await _order(rig, "shelter-01", "Calibrate the gauge", now + 10 * DAY_MS)
    elsewhere = await _order(rig, "shelter-02", "Clean the tanks", now + 5 * DAY_MS)

    page = await rig.page(Role.MAINTAINER)
    # From the fleet view to the site's orders: the other site's are not listed.
    await page.click("tr[data-site='shelter-01'] a.wo-link")
    await page.wait_for_url("**/console/work-orders?site=shelter-01")
    await expect(page.locator("h1")).to_have_text("维护工单")
    rows = page.locator("#work-orders-table tbody tr[data-order]")
    # The earliest due first; only the late one is marked overdue.
    await expect(rows).to_have_count(2)
    assert await rows.nth(0).get_attribute("data-order") == late["id"]
    assert await rows.nth(1).get_attribute("data-order") == ahead["id"]
    await expect(rows.nth(0)).to_have_class("overdue")
    await expect(rows.nth(0).locator(".badge")).to_have_text("已逾期")
    assert await rows.nth(1).get_attribute("data-overdue") is None
    await expect(page.locator(f"tr[data-order='{elsewhere['id']}']")).to_have_count(0)
    await rig.shot(page, "work-orders")

    # The order: its facts, then closed with a note, as the API records it.
    await rows.nth(0).locator("a").first.click()
    await page.wait_for_url(f"**/console/work-orders/{late['id']}")
    await expect(page.locator("#work-order")).to_have_attribute("data-overdue", "1")
    await page.fill("#wo-note", "   ")  # blank: refused in the page, nothing sent
    await page.click("#wo-close")
    await expect(page.locator("#wo-error")).to_have_text("请填写说明：做了什么。")
    await page.fill("#wo-note", "door cycled twice, seal checked at 52 kPa")
    await page.click("#wo-close")
    await expect(page.locator("#status")).to_have_text("工单已关闭。")
    await expect(page.locator("#work-order")).to_have_attribute("data-state", "done")
    await expect(page.locator("#wo-state")).to_have_text("已完成")
    await expect(page.locator("#wo-closed")).to_contain_text("maintainer")
    await expect(page.locator("#wo-closed q")).to_have_text(
        "door cycled twice, seal checked at 52 kPa"
    )
    await expect(page.locator("#wo-close-form")).to_have_count(0)
    history = page.locator("#wo-history tbody tr")
    await expect(history).to_have_count(2)
    await expect(history.nth(0)).to_have_attribute("data-action", "create")
    await expect(history.nth(1)).to_have_attribute("data-action", "close")
    await expect(history.nth(1)).to_contain_text("door cycled twice, seal checked at 52 kPa")
    await rig.shot(page, "work-order-closed")
    no_errors(page)

    got = await rig.api.get(f"/api/v1/work-orders/{late['id']}", headers=rig.tokens[Role.VIEWER])
    assert (got.json()["state"], got.json()["closed_by"], got.json()["closing_note"]) == (
        "done",
        "maintainer",
        "door cycled twice, seal checked at 52 kPa",
    )

    # The list's state filter: the done one under "done", no longer under "to do".
    await page.goto("/console/work-orders?site=shelter-01&state=done")
    await expect(page.locator("#work-orders-table tbody tr[data-order]")).to_have_count(1)
    await expect(page.locator(f"tr[data-order='{late['id']}']")).to_have_attribute(
        "data-state", "done"
    )
    await page.goto("/console/work-orders?site=shelter-01")
    await expect(page.locator(f"tr[data-order='{late['id']}']")).to_have_count(0)
    no_errors(page)


async def test_a_viewer_sees_work_orders_but_cannot_close_one(rig: Rig) -> None:
    now = time.time_ns() // 1_000_000
    order = await _order(rig, "shelter-02", "Run the fan for an hour", now + 3 * DAY_MS)
    page = await rig.page(Role.VIEWER, locale="en")
    await page.goto("/console/sites/shelter-02?lang=en")
    await page.click("#site-work-orders")
    await page.wait_for_url("**/console/work-orders?site=shelter-02&state=all")
    await expect(page.locator(f"tr[data-order='{order['id']}']")).to_have_count(1)
    await page.goto(f"/console/work-orders/{order['id']}")
    await expect(page.locator("h1")).to_have_text(f"Work order {order['id']}")
    await expect(page.locator("#wo-state")).to_have_text("Open")
    await expect(page.locator("#wo-close-form")).to_have_count(0)
    await expect(page.locator("#wo-history tbody tr[data-action='create']")).to_have_count(1)
    no_errors(page)
