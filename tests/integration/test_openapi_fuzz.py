"""Schemathesis against the live control service: no 5xx, and every answer matches the spec.

The server is a real uvicorn on loopback, in a thread with its own event loop, for the whole
module. The schema comes from the app object at import time (``app.openapi()``, no store or
server needed), because schemathesis builds one test per operation at collection time, before
any fixture runs; ``test_the_served_spec_is_the_fuzzed_one`` checks that the live server serves
exactly that spec. (``schemathesis.pytest.from_fixture``, the lazy loader that could take the
spec from the live server, is broken in schemathesis 4.32.5 under pytest 9.2: it reads
``request.node._nodeid``, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from control import ControlSettings, create_app
from shelterwatch.store.base import DeviceStatus, Sample
from shelterwatch.store.factory import open_store

pytestmark = pytest.mark.integration

TOKEN = "fuzz-" + "k" * 27  # 32 characters
T0 = 1_700_000_000_000


class _Server(uvicorn.Server):
    # The thread has no signal handlers to give; uvicorn must not try to install its own.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _prefill(url: str) -> None:
    async with open_store(url) as st:
        await st.write(
            [
                Sample(
                    "ventilation",
                    "shelter-01",
                    "gw-01",
                    "vent",
                    T0,
                    {"overpressure": 41.5, "mode": "filtered", "fan_running": True, "n": 3},
                )
            ]
        )
        await st.write_status(
            [
                DeviceStatus(
                    "shelter-01", "gw-01", "vent", "ventilation", T0, True, units={"n": "1"}
                )
            ]
        )


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The control service on a free loopback port, over a prefilled SQLite store."""
    store_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}"
    app = create_app(
        ControlSettings(mode="production", store_url=store_url, api_token=SecretStr(TOKEN))
    )
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    failure: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            await _prefill(store_url)
            await server.serve()

        try:
            asyncio.run(main())
        except BaseException as exc:  # SystemExit on a failed start-up, too
            failure.append(exc)

    thread = threading.Thread(target=run, name="control-api-fuzz", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if failure or not thread.is_alive():
                raise RuntimeError(f"the control service failed to start: {failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the control service did not start within 15 s")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "the control service did not stop"
        assert not failure, failure


def _spec() -> dict[str, Any]:
    # Settings only shape the app here; the store opens in the lifespan, which never runs.
    app = create_app(ControlSettings(mode="development", store_url="sqlite:///unused.db"))
    return app.openapi()


SPEC = _spec()
schema = schemathesis.openapi.from_dict(SPEC)


def test_the_served_spec_is_the_fuzzed_one(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as client:
        resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.json() == SPEC


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_spec(live_server: str, case: schemathesis.Case) -> None:
    print("CASE", case.headers, case.meta.phase.name if case.meta else None, case.meta.generation.mode if case.meta else None)
    case.call_and_validate(
        base_url=live_server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
