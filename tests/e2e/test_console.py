"""The console as a duty officer uses it, in real Chromium (see conftest.py for the rig)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import Rig
from control_helpers import PASSWORDS
from playwright.async_api import Page, expect
from servers import wait_until

from control.auth import Role

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _close_contexts(rig: Rig) -> AsyncIterator[None]:
    yield
    for context in rig.contexts:
        await context.close()
    rig.contexts.clear()


def no_errors(page: Page) -> None:
    errors: list[str] = page.errors  # type: ignore[attr-defined]
    assert not errors, f"browser console errors (CSP violations, script errors): {errors}"


async def test_sign_in_and_see_the_fleet_in_chinese(rig: Rig) -> None:
    page = await rig.page()
    # Any page sends a stranger to the sign-in form, and back there after it.
    await page.goto("/console/alerts")
    await page.wait_for_url("**/console/login?next=/console/alerts")
    await page.fill("input[name=username]", "duty_officer")
    await page.fill("input[name=password]", "wrong password")
    await page.click("button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    # The browser logs the refusal's 401 itself; that one was meant.
    page.errors.clear()  # type: ignore[attr-defined]
    await page.fill("input[name=username]", Role.DUTY_OFFICER.value)
    await page.fill("input[name=password]", PASSWORDS[Role.DUTY_OFFICER])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/alerts")

    await page.click("nav >> text=工程总览")
    await page.wait_for_url("**/console/fleet")
    await expect(page.locator("h1")).to_have_text("全部工程的战备状态")
    rows = page.locator("#fleet-table tbody tr")
    await expect(rows).to_have_count(4)
    # The critical alert makes shelter-01 not ready. shelter-02 has no alert, but no
    # maintenance is on record in this fresh database: every item is overdue, and the row
    # says so with the points it costs.
    await expect(page.locator("tr[data-site=shelter-01]")).to_have_attribute(
        "data-readiness", "not_ready"
    )
    await expect(page.locator("tr[data-site=shelter-01]")).to_contain_text("未就绪")
    await expect(page.locator("tr[data-site=shelter-02]")).to_have_attribute(
        "data-readiness", "attention"
    )
    await expect(page.locator("tr[data-site=shelter-02]")).to_contain_text("维护项目逾期")
    await expect(page.locator("tr[data-site=siren-01] td").nth(1)).to_have_text("north")
    await rig.shot(page, "fleet", docs=True)
    # Filter by district: only the siren post of the north is left.
    await page.select_option("select[name=district]", "north")
    await page.wait_for_url("**/console/fleet?district=north")
    await expect(rows).to_have_count(1)
    no_errors(page)


async def test_site_view_draws_the_history_with_its_limits(rig: Rig) -> None:
    page = await rig.page(Role.VIEWER)
    await page.click("tr[data-site=shelter-01] a")
    await page.wait_for_url("**/console/sites/shelter-01")
    chart = page.locator("#chart")
    # Overpressure is charted first; an hour of minute samples is about 60 buckets.
    await expect(chart).to_have_attribute("data-point", "overpressure")
    await expect(chart).not_to_have_attribute("data-points", "")
    points = int(await chart.get_attribute("data-points") or 0)
    assert 55 <= points <= 62, points
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(page.locator("#limits li")).to_have_count(2)
    await expect(page.locator("#limits li").first).to_contain_text("30")
    # A longer range holds more samples.
    await page.click("a[data-range='6h']")
    await page.wait_for_url("**range=6h")
    await expect(chart).not_to_have_attribute("data-points", "")
    assert int(await chart.get_attribute("data-points") or 0) >= 115
    await expect(page.locator(".device[data-device=water]")).to_contain_text("tank_level")
    await rig.shot(page, "site", docs=True)
    no_errors(page)


async def test_acknowledge_an_alert_and_see_a_new_one_arrive_live(rig: Rig) -> None:
    page = await rig.page(Role.MAINTAINER)
    await page.goto("/console/alerts")
    row = page.locator("#alerts-table tr[data-state=raised]").first
    await expect(row).to_contain_text("shelter-01")
    await row.locator("button[data-ack]").click()
    await expect(page.locator("#ack-dialog")).to_be_visible()
    await page.fill("#ack-comment", "已到现场，正在检查排风阀")
    await page.click("#ack-submit")
    acked = page.locator("#alerts-table tr[data-state=acknowledged]")
    await expect(acked).to_have_count(1)
    await expect(acked).to_contain_text("已到现场，正在检查排风阀")
    await expect(acked).to_contain_text("maintainer")
    await expect(acked.locator("button[data-ack]")).to_have_count(0)
    # The engine raises another alert: the open page shows it without a reload.
    await expect(page.locator("body")).to_have_attribute("data-stream", "open")
    await rig.raise_alert(
        "shelter-02",
        "water_reserve_low",
        "water",
        "major",
        "Water tank at 28 %, below the site's reserve of 30 %",
        point="tank_level",
        value=28.0,
    )
    await expect(page.locator("#alerts-table tr[data-state=raised]")).to_contain_text(
        "shelter-02", timeout=10_000
    )
    await rig.shot(page, "alerts", docs=True)
    no_errors(page)


async def test_silent_test_confirms_its_targets_and_reports_live(rig: Rig) -> None:
    page = await rig.page(Role.DUTY_OFFICER)
    await page.goto("/console/sirens")
    await page.check("input[name=siren][value=siren-01]")
    await page.check("input[name=siren][value=siren-02]")
    await page.select_option("#kind", "silent_test")
    await expect(page.locator("#signal-field")).to_be_hidden()
    await page.fill("#reason", "每周静默测试")
    await page.click("#preview")
    # The confirmation names every target before anything is sent.
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#confirm-targets li")).to_have_count(2)
    await expect(dialog.locator("li[data-siren=siren-01]")).to_contain_text("人民广场 1 号")
    await expect(dialog.locator("li[data-siren=siren-02]")).to_contain_text("gw-siren-02")
    assert not rig.gateway.commands(), "a preview must send nothing"
    await rig.shot(page, "siren-confirm", docs=True)
    await page.click("#confirm-send")
    await page.wait_for_url("**/console/activations/act-*")
    activation_id = page.url.rsplit("/", 1)[1]
    live = page.locator("#live")
    await expect(live).to_have_attribute("data-activation-state", "active")
    await expect(page.locator("body")).to_have_attribute("data-stream", "open")

    await wait_until(lambda: len(rig.gateway.commands()) == 2, 10, "two silent-test commands")
    commands = {gw: cmd for gw, cmd in rig.gateway.commands()}
    assert {c.id for c in commands.values()} == {
        f"{activation_id}-gw-siren-01",
        f"{activation_id}-gw-siren-02",
    }
    await rig.gateway.ack(
        "gw-siren-01",
        commands["gw-siren-01"].id,
        "succeeded",
        device="siren",
        outcome="test_passed",
    )
    # The page follows each answer as it comes, without a reload.
    await expect(page.locator("tr[data-target=siren-01]")).to_have_attribute(
        "data-state", "test_passed", timeout=10_000
    )
    await rig.gateway.ack(
        "gw-siren-02",
        commands["gw-siren-02"].id,
        "failed",
        device="siren",
        outcome="test_failed",
        detail="amplifier fault",
    )
    await expect(page.locator("tr[data-target=siren-02]")).to_have_attribute(
        "data-state", "test_failed", timeout=10_000
    )
    await expect(page.locator("tr[data-target=siren-02]")).to_contain_text("amplifier fault")
    await expect(live).to_have_attribute(
        "data-activation-state", "completed_with_failures", timeout=10_000
    )
    await expect(page.locator("#activation-state")).to_have_text("完成（有失败）")
    await rig.shot(page, "silent-test-report", docs=True)
    no_errors(page)


async def test_english_on_request_and_the_audit_chain(rig: Rig) -> None:
    page = await rig.page(Role.COMMANDER)
    await page.click("#lang-switch")
    await expect(page.locator("h1")).to_have_text("Readiness of every site")
    # The choice sticks (a cookie) on the next page.
    await page.click("nav >> text=Audit")
    await page.wait_for_url("**/console/audit")
    await expect(page.locator("h1")).to_have_text("Audit trail")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    await page.click("#audit-verify")
    await expect(page.locator("#verify-result")).to_have_attribute("data-ok", "true")
    await expect(page.locator("#verify-result")).to_contain_text("The chain is intact")
    await page.fill("input[name=action]", "siren")
    await page.click("form.filters button[type=submit]")
    await expect(page.locator("#audit-table tbody")).to_contain_text("siren.request")
    await rig.shot(page, "audit", docs=True)
    await page.click("nav >> text=Conversions")
    await expect(page.locator("h1")).to_have_text("Peacetime-to-wartime conversions")
    await expect(page.locator("#no-open-orders")).to_contain_text("No conversion order is open")
    no_errors(page)


async def test_a_browser_asking_for_english_gets_it_and_a_viewer_cannot_act(rig: Rig) -> None:
    page = await rig.page(locale="en-US")
    await page.goto("/console/login")
    await expect(page.locator("h1")).to_have_text("Sign in")
    viewer = await rig.page(Role.VIEWER)
    await viewer.goto("/console/sirens")
    await expect(viewer.locator("#preview")).to_have_count(0)
    await viewer.goto("/console/alerts")
    await expect(viewer.locator("button[data-ack]")).to_have_count(0)
    await viewer.goto("/console/audit")
    await expect(viewer.locator("h1")).to_contain_text("403")
    no_errors(page)


async def test_fits_a_tablet(rig: Rig) -> None:
    page = await rig.page(Role.DUTY_OFFICER, width=768, height=1024)
    for path in ("/console/fleet", "/console/sites/shelter-01", "/console/sirens"):
        await page.goto(path)
        # Wide tables scroll inside their box; the page itself never scrolls sideways.
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than a 768px tablet"
    await page.goto("/console/fleet")
    await rig.shot(page, "tablet-fleet")
    no_errors(page)
