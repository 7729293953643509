"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
control service (uvicorn), a real SQLite store fed with samples, the session's Mosquitto, and
a fake gateway that answers siren commands the way each test chooses.

One rig per module (a server start costs a second or two); each test gets its own browser
context, so cookies and language choices never leak from one test into the next.

Screenshots: one per test, in ``<pytest tmp>/console-screenshots/`` (the path is printed).
With ``SHELTERWATCH_DOCS_SCREENSHOTS=1`` the tests that illustrate docs/dashboards.md also
write ``docs/images/console-*.png``.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from control_helpers import (
    PASSWORDS,
    FakeGateway,
    bearer,
    control_settings,
    create_users,
    login,
    serve,
)
from platform_helpers import mqtt_settings
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from servers import MosquittoServer, wait_until

from control.auth import Role
from shelterwatch.config import MqttSettings
from shelterwatch.contract import Alert, alert_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store import Sample
from shelterwatch.store.sqlite import SqliteStore

CHROMIUM = os.environ.get("SHELTERWATCH_CHROMIUM", "/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
# Two sirens on two gateways: one silent-test command each, answered separately.
SIRENS = [
    ("siren-01", "gw-siren-01", "north", "人民广场 1 号"),
    ("siren-02", "gw-siren-02", "south", "江边 2 号"),
]
SHELTERS = ("shelter-01", "shelter-02")


@dataclass
class Rig:
    base_url: str
    browser: Browser
    gateway: FakeGateway
    mqtt: MqttSettings
    engine: MqttClient
    api: httpx.AsyncClient
    tokens: dict[Role, dict[str, str]]
    shots: Path
    contexts: list[BrowserContext] = field(default_factory=list)

    async def page(
        self, role: Role | None = None, *, locale: str = "zh-CN", **viewport: int
    ) -> Page:
        """A new browser context (its own cookies), signed in as ``role`` through the form."""
        context = await self.browser.new_context(
            base_url=self.base_url,
            locale=locale,
            viewport={"width": viewport.get("width", 1280), "height": viewport.get("height", 900)},
        )
        self.contexts.append(context)
        page = await context.new_page()
        errors: list[str] = []
        # CSP violations and script errors show up here; every test asserts there are none.
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors  # type: ignore[attr-defined]
        if role is not None:
            await page.goto("/console/login")
            await page.fill("input[name=username]", role.value)
            await page.fill("input[name=password]", PASSWORDS[role])
            await page.click("button[type=submit]")
            await page.wait_for_url("**/console/fleet")
        return page

    async def shot(self, page: Page, name: str, *, docs: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        if docs and os.environ.get("SHELTERWATCH_DOCS_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            # The top of the page only: the docs stay small (a few hundred KB in all).
            size = page.viewport_size or {"width": 1280, "height": 900}
            clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 600)}
            await page.screenshot(path=str(DOCS_IMAGES / f"console-{name}.png"), clip=clip)
        return path

    async def raise_alert(
        self, site: str, rule: str, device: str, severity: str, message: str, **kw: Any
    ) -> None:
        now = time.time_ns() // 1_000_000
        alert = Alert(
            active=True,
            ts=now,
            raised_ts=now,
            severity=severity,  # type: ignore[arg-type]
            kind=kw.get("kind", "threshold"),
            point=kw.get("point"),
            message=message,
            value=kw.get("value"),
        )
        topic = alert_topic(site, rule, device, self.mqtt.prefix)
        await self.engine.publish(topic, alert.model_dump_json().encode(), qos=1, retain=True)

    async def alerts(self) -> list[dict[str, Any]]:
        resp = await self.api.get("/api/v1/alerts", headers=self.tokens[Role.VIEWER])
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()
        return rows


def _samples(now: int) -> list[Sample]:
    """Two hours of readings, one a minute, with a dip in overpressure below its 30 Pa limit."""
    out: list[Sample] = []
    for i in range(120):
        ts = now - (119 - i) * 60_000
        for n, site in enumerate(SHELTERS):
            gw = f"gw-{site}"
            overpressure = 38.0 + 6 * ((i % 20) / 20) - (14 if 60 <= i < 70 and n == 0 else 0)
            out += [
                Sample(
                    "ventilation",
                    site,
                    gw,
                    "vent",
                    ts,
                    {
                        "overpressure": round(overpressure, 1),
                        "mode": "filtered",
                        "fan_running": True,
                    },
                ),
                Sample(
                    "environment",
                    site,
                    gw,
                    "env",
                    ts,
                    {"co2": 0.08 + i * 0.001, "humidity": 60.0 + n},
                ),
                Sample("water", site, gw, "water", ts, {"tank_level": 96.0 - i * 0.02}),
                Sample("door", site, gw, "door", ts, {"closed": True, "seal_pressure": 55.0}),
            ]
        for siren, gw, _district, _name in SIRENS:
            out.append(
                Sample("siren", siren, gw, "siren", ts, {"battery_voltage": 26.5, "ac_power": True})
            )
    return out


def _check_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make system-deps` installs Debian's chromium "
            "(or set SHELTERWATCH_CHROMIUM)",
            pytrace=False,
        )


def _no_sandbox() -> list[str]:
    # Chromium refuses to start as root with its sandbox (containers, CI).
    return ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(
    mosquitto: MosquittoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    _check_chromium()
    tmp = tmp_path_factory.mktemp("console")
    shots = tmp_path_factory.getbasetemp() / "console-screenshots"
    shots.mkdir(exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"e2e{tag}/v1")
    store_path = tmp / "store.db"
    async with SqliteStore(store_path) as store:
        await store.write(_samples(time.time_ns() // 1_000_000))
    settings = control_settings(
        f"sqlite:///{tmp / 'control.db'}",
        f"sqlite:///{store_path}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        sirens={"sweep_interval_s": 0.2},
    )
    await create_users(settings)
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(FakeGateway(mqtt))
        engine = await stack.enter_async_context(MqttClient(mqtt, f"engine-{tag}"))
        base_url = await stack.enter_async_context(serve(settings))
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=10))
        tokens = {r: bearer(await login(api, r.value, PASSWORDS[r])) for r in Role}
        for siren, gw, district, name in SIRENS:
            body = {
                "id": siren,
                "name": name,
                "site": siren,
                "gateway": gw,
                "device": "siren",
                "district": district,
                "lat": 36.07,
                "lon": 120.38,
                "radius_m": 800,
            }
            resp = await api.post("/api/v1/sirens", json=body, headers=tokens[Role.COMMANDER])
            assert resp.status_code == 201, resp.text
        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=_no_sandbox())
        stack.push_async_callback(browser.close)
        rig = Rig(base_url, browser, gateway, mqtt, engine, api, tokens, shots)
        # A critical alert on shelter-01, as the collector's engine publishes it.
        await rig.raise_alert(
            "shelter-01",
            "overpressure_low",
            "vent",
            "critical",
            "Overpressure 24.0 Pa in filtered mode (needs 30-50 Pa)",
            point="overpressure",
            value=24.0,
        )

        async def recorded() -> bool:
            return len(await rig.alerts()) == 1

        await wait_until(recorded, 10, "the seeded alert recorded by the control service")
        print(f"console screenshots go to {shots}")
        yield rig


@pytest_asyncio.fixture(loop_scope="module")
async def clean_contexts(rig: Rig) -> AsyncIterator[None]:
    yield
    for context in rig.contexts:
        await context.close()
    rig.contexts.clear()
