"""A misbehaving Modbus device: every way of answering wrong marks its points bad, is counted,
and leaves the other devices polled as before (firmware_sim/misbehaving.py)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from platform_helpers import collector_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from firmware_sim.misbehaving import MisbehavingProxy, Misbehaviour
from gateway import Gateway, GatewaySettings
from shelterwatch.cli.services import gateway_yaml
from shelterwatch.contract import Quality
from shelterwatch.store.sqlite import SqliteStore


def _env_status(path: Path) -> tuple[int, str] | None:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT online, error FROM device_status WHERE device = 'env'").fetchone()
    return (int(row[0]), str(row[1])) if row else None


async def test_misbehaving_device_is_marked_bad_and_the_others_go_on(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.1)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        env = fleet.device("shelter-01", "env")
        async with MisbehavingProxy(env.host, env.port, delay_s=1.0) as proxy:
            (site,) = fleet.gateway_config(mqtt.host, mqtt.port, mqtt.prefix)
            doc = gateway_yaml(site, mqtt) | {
                "outbox": {"path": str(tmp_path / "outbox.db")},
                "commands": {"replay_cache_path": str(tmp_path / "commands.db")},
            }
            for device in doc["devices"]:
                device["interval_s"] = 0.1
                if device["id"] == "env":
                    device["transport"] = {"host": proxy.host, "port": proxy.port}
                    device["timeout_s"] = 0.3
                    device["retries"] = 0
            gw = Gateway(GatewaySettings.model_validate(doc))
            events = []
            emit = gw._on_event

            async def noting(event):  # type: ignore[no-untyped-def]
                events.append(event)
                await emit(event)

            env_poller = next(p for p in gw.pollers if p.config.id == "env")
            env_poller._emit = noting
            others = [p for p in gw.pollers if p is not env_poller]
            collector = collector_for(store, mqtt, client_id=f"mis-{uuid.uuid4().hex[:6]}")
            async with running(collector.run(), gw.run()):
                await wait_until(lambda: env_poller.online is True, 10, "env online")
                for mode in Misbehaviour:
                    if mode is Misbehaviour.OK:
                        continue
                    failures = env_poller.failures
                    polls = [p.polls for p in others]
                    proxy.mode = mode
                    await wait_until(
                        lambda f=failures: env_poller.online is False and env_poller.failures > f,
                        10,
                        f"env offline in mode {mode}",
                    )
                    # Every point bad, no values: nothing stale is shown as current.
                    last = events[-1]
                    assert not last.values and set(last.quality.values()) == {Quality.BAD}
                    assert len(last.quality) == len(env_poller.profile.points)
                    await wait_until(
                        lambda: (
                            _env_status(tmp_path / "store.db") is not None
                            and _env_status(tmp_path / "store.db")[0] == 0
                        ),  # type: ignore[index]
                        10,
                        f"the offline state with its error stored ({mode})",
                    )
                    # The others were polled all along, at their pace.
                    await wait_until(
                        lambda ns=polls: all(
                            p.polls > n + 3 for p, n in zip(others, ns, strict=True)
                        ),
                        5,
                        "the other devices polled meanwhile",
                    )
                    assert all(p.online for p in others)
                    proxy.mode = Misbehaviour.OK
                    await wait_until(lambda: env_poller.online is True, 10, f"env back ({mode})")
                await wait_until(
                    lambda: _env_status(tmp_path / "store.db") == (1, ""), 10, "env online stored"
                )
    assert proxy.mangled > 0
    assert env_poller.failures >= len(Misbehaviour) - 1
    assert collector.stats.malformed == 0
