"""Hostile text in every free-text field, shown by the console in real Chromium: as text.

Through the API (``tests/integration/test_hostile_control.py`` checks the API's side), each
field gets a payload of SQL, HTML, event-handler, template and RTL-override tricks, tagged
with the field's name. Every console page that shows them is then loaded: no dialog opens
(an ``alert(1)`` that ran would open one), the browser logs no error (a CSP violation is
one), the page holds the payload as literal text, ``{{7*7}}`` is not 49, and no element was
injected (no ``img[src=x]``, no inline event handler, no script carrying the payload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import Rig
from playwright.async_api import Dialog, Page

from control.auth import Role

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PAYLOAD = (
    "'; DROP TABLE users; -- <script>alert(1)</script> <img src=x onerror=alert(1)> "
    '{{7*7}} " onmouseover="alert(1) \u202etxt.exe'
)


def hostile(field: str) -> str:
    return f"[{field}] {PAYLOAD}"


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _close_contexts(rig: Rig) -> AsyncIterator[None]:
    yield
    for context in rig.contexts:
        await context.close()
    rig.contexts.clear()


async def _post(rig: Rig, role: Role, path: str, body: object, expect: int) -> dict[str, object]:
    resp = await rig.api.post(path, json=body, headers=rig.tokens[role])
    assert resp.status_code == expect, f"{path}: {resp.status_code} {resp.text[:300]}"
    out: dict[str, object] = resp.json()
    return out


async def _is_inert(page: Page, dialogs: list[str], fields: list[str]) -> None:
    await page.wait_for_load_state("networkidle")
    text = await page.locator("body").inner_text()
    for field in fields:
        assert hostile(field) in text, f"{page.url}: {field}'s text not shown literally"
    injected = await page.evaluate(
        """() => ({
            img: document.querySelectorAll('img[src="x"], img[onerror]').length,
            handlers: document.querySelectorAll('[onerror], [onmouseover]').length,
            scripts: [...document.scripts].filter(s => s.text.includes('alert(1)')).length,
        })"""
    )
    assert injected == {"img": 0, "handlers": 0, "scripts": 0}, (page.url, injected)
    assert not dialogs, f"{page.url}: a script ran and opened {dialogs}"
    errors: list[str] = page.errors  # type: ignore[attr-defined]
    assert not errors, f"{page.url}: browser console errors: {errors}"


async def test_hostile_text_renders_as_text_on_every_console_page(rig: Rig) -> None:
    commander = Role.COMMANDER
    siren = {
        "id": "siren-x",
        "name": hostile("siren.name"),
        "site": "siren-x",
        "gateway": "gw-siren-01",
        "device": "siren-x",
        "district": "north",
        "lat": 36.07,
        "lon": 120.38,
        "radius_m": 800,
    }
    await _post(rig, commander, "/api/v1/sirens", siren, 201)
    group = {"name": "hostile", "description": hostile("group.description"), "members": ["siren-x"]}
    await _post(rig, commander, "/api/v1/siren-groups", group, 201)
    activation = {
        "kind": "silent_test",
        "sirens": ["siren-x"],
        "reason": hostile("activation.reason"),
        "exercise": hostile("act.ex"),
    }
    made = await _post(rig, commander, "/api/v1/activations", activation, 202)
    act_id = str(made["id"])
    cancel = {"comment": hostile("activation.cancel")}
    await _post(rig, commander, f"/api/v1/activations/{act_id}/cancel", cancel, 200)
    (alert,) = await rig.alerts()
    ack = {"comment": hostile("alert.ack")}
    await _post(rig, Role.MAINTAINER, f"/api/v1/alerts/{alert['id']}/ack", ack, 200)
    order = {
        "kind": "real",
        "level": "emergency",
        "shelters": [{"site": "shelter-02"}],
        "reason": hostile("conversion.reason"),
    }
    await _post(rig, Role.DUTY_OFFICER, "/api/v1/conversions", order, 202)

    pages = {
        "/console/sirens": ["siren.name"],
        f"/console/activations/{act_id}": ["activation.reason", "activation.cancel"],
        "/console/alerts": ["alert.ack"],
        "/console/conversions": ["conversion.reason"],
        "/console/audit": [],
    }
    for path, fields in pages.items():
        page = await rig.page(commander)
        dialogs: list[str] = []

        async def on_dialog(dialog: Dialog, seen: list[str] = dialogs) -> None:
            seen.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await page.goto(path)
        await _is_inert(page, dialogs, fields)
        # Hovering every element would fire an injected onmouseover.
        for element in (await page.locator("td, li, p, dd, h1, h2").all())[:60]:
            if await element.is_visible():
                await element.hover(timeout=2000)
        assert not dialogs, f"{path}: {dialogs}"
        await rig.shot(page, f"injection-{path.strip('/').replace('/', '-')}")
