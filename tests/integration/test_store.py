"""Both store adapters against the real thing: InfluxDB 1.6 and an SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path

import pytest
from servers import InfluxServer, free_port

from shelterwatch.errors import ConfigError, StoreError, StoreRejected
from shelterwatch.store.base import DeviceStatus, LatestValue, Sample, TimeSeriesStore
from shelterwatch.store.factory import open_store
from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

SITE = 'Hall A, north = 1 "温" C:\\x'
GW = "gw 1,=x"
FAN = "fan,1=x y"
T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest) -> TimeSeriesStore:
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]


def _by_key(values: list[LatestValue]) -> dict[tuple[str, str, str], LatestValue]:
    return {(v.device, v.kind, v.point): v for v in values}


async def test_write_and_read_back(store: TimeSeriesStore) -> None:
    await store.write(
        [
            Sample(
                "ventilation",
                SITE,
                GW,
                FAN,
                T0,
                {
                    "rpm": 1200,
                    "temp c": 21.5,
                    "running": True,
                    "mode": 'filtered "滤毒"\\x, a=b',
                    "overpressure": 2.0,  # integral float: must come back as float
                    "big": 2**62 + 1,  # above 2**53: must not round
                    'note"=,x': "newline\nin value",
                },
            ),
            # Report by exception: only rpm changed.
            Sample("ventilation", SITE, GW, FAN, T0 + 1000, {"rpm": 1300, "running": False}),
            Sample("water", SITE, GW, "tank-1", T0 + 5, {"level": 0.75, "ok": True}),
            Sample("ventilation", "other-site", "gw2", FAN, T0 + 9000, {"rpm": 1}),
        ]
    )
    await store.write_status(
        [
            DeviceStatus(SITE, GW, FAN, "ventilation", T0 - 10, True, units={"rpm": "old"}),
            DeviceStatus(
                SITE,
                GW,
                FAN,
                "ventilation",
                T0,
                True,
                error="",
                units={"rpm": "1/min", "temp c": "°C", "overpressure": "Pa"},
            ),
            DeviceStatus(SITE, GW, "tank-1", "water", T0, False, "timeout", {"level": "m"}),
        ]
    )

    latest = _by_key(await store.latest(SITE))
    expected = {
        (FAN, "ventilation", "rpm"): (1300, T0 + 1000, "1/min"),
        (FAN, "ventilation", "running"): (False, T0 + 1000, ""),
        (FAN, "ventilation", "temp c"): (21.5, T0, "°C"),
        (FAN, "ventilation", "mode"): ('filtered "滤毒"\\x, a=b', T0, ""),
        (FAN, "ventilation", "overpressure"): (2.0, T0, "Pa"),
        (FAN, "ventilation", "big"): (2**62 + 1, T0, ""),
        (FAN, "ventilation", 'note"=,x'): ("newline\nin value", T0, ""),
        ("tank-1", "water", "level"): (0.75, T0 + 5, "m"),
        ("tank-1", "water", "ok"): (True, T0 + 5, ""),
    }
    assert set(latest) == set(expected)
    for key, (value, ts, unit) in expected.items():
        got = latest[key]
        assert (got.value, got.ts_ms, got.unit) == (value, ts, unit), key
        assert type(got.value) is type(value), key

    assert await store.count("ventilation", SITE) == 2
    assert await store.count("ventilation") == 3
    assert await store.count("water", SITE) == 1
    assert await store.count("water", "other-site") == 0
    assert await store.count("no-such-kind") == 0
    assert await store.sites() == sorted([SITE, "other-site"])
    assert [v.point for v in await store.latest("other-site")] == ["rpm"]
    assert await store.latest("nowhere") == []


async def test_writes_are_idempotent(store: TimeSeriesStore) -> None:
    # A redelivered batch (crash between store and ack) must not duplicate anything.
    batch = [Sample("door", "s1", "gw", f"d{i}", T0 + i, {"open": True, "n": i}) for i in range(5)]
    await store.write(batch)
    await store.write(batch)
    await store.write([Sample("door", "s1", "gw", "d0", T0, {"open": False})])
    assert await store.count("door") == 5
    latest = _by_key(await store.latest("s1"))
    assert latest[("d0", "door", "open")].value is False
    assert latest[("d0", "door", "n")].value == 0


async def test_nan_and_inf_are_dropped(store: TimeSeriesStore) -> None:
    await store.write(
        [
            Sample("power", "s1", "gw", "meter", T0, {"v": math.nan, "a": 3.5}),
            Sample("power", "s1", "gw", "meter", T0 + 1, {"v": math.inf}),
        ]
    )
    latest = await store.latest("s1")
    assert [(v.point, v.value) for v in latest] == [("a", 3.5)]


async def test_empty_writes_are_no_ops(store: TimeSeriesStore) -> None:
    await store.write([])
    await store.write_status([])
    assert await store.sites() == []


async def test_newest_status_wins_regardless_of_arrival(store: TimeSeriesStore) -> None:
    await store.write([Sample("siren", "s1", "gw", "sir", T0, {"db": 120})])
    await store.write_status([DeviceStatus("s1", "gw", "sir", "siren", T0, True, "", {"db": "dB"})])
    # An older retained state arriving late must not replace the newer one.
    await store.write_status([DeviceStatus("s1", "gw", "sir", "siren", T0 - 1, True, "", {})])
    [value] = await store.latest("s1")
    assert value.unit == "dB"


async def _stored_districts(store: TimeSeriesStore) -> set[tuple[str, str, str | None]]:
    """(measurement, device, district) of everything stored; None: no district at all."""
    if isinstance(store, InfluxStore):
        (result,) = await store.query("SHOW SERIES")
        out: set[tuple[str, str, str | None]] = set()
        for series in result.get("series", []):
            for (key,) in series["values"]:
                measurement, *pairs = key.split(",")
                tags = dict(pair.split("=", 1) for pair in pairs)
                out.add((measurement, tags["device"], tags.get("district")))
        return out
    assert isinstance(store, SqliteStore)
    import sqlite3

    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        rows = conn.execute(
            "SELECT measurement, device, district FROM samples UNION "
            "SELECT 'device_status', device, district FROM device_status"
        ).fetchall()
    return {(m, d, district) for m, d, district in rows}


async def test_district_is_stored_only_when_given(store: TimeSeriesStore) -> None:
    await store.write(
        [
            Sample("door", "s1", "gw", "d1", T0, {"open": True}, "xihu"),
            Sample("door", "s2", "gw2", "d2", T0, {"open": False}),
        ]
    )
    await store.write_status(
        [
            DeviceStatus("s1", "gw", "d1", "door", T0, True, district="xihu"),
            DeviceStatus("s2", "gw2", "d2", "door", T0, True),
        ]
    )
    assert await _stored_districts(store) == {
        ("door", "d1", "xihu"),
        ("door", "d2", None),
        ("device_status", "d1", "xihu"),
        ("device_status", "d2", None),
    }
    # Reads are as before: the district changes no answer.
    assert [v.value for v in await store.latest("s1")] == [True]
    assert [v.value for v in await store.latest("s2")] == [False]
    assert await store.count("door") == 2
    assert await store.sites() == ["s1", "s2"]


# -- InfluxDB only -------------------------------------------------------------------------


async def test_influx_type_conflict_is_rejected(influx_store: InfluxStore) -> None:
    await influx_store.write([Sample("env", "s1", "gw", "d", T0, {"t": 1.5})])
    with pytest.raises(StoreRejected, match="field type conflict") as info:
        await influx_store.write([Sample("env", "s1", "gw", "d", T0 + 1, {"t": "warm"})])
    assert "HTTP 400" in str(info.value)


async def test_influx_unknown_database_is_rejected(influxdb: InfluxServer) -> None:
    async with InfluxStore(influxdb.url, "never_created", create_database=False) as st:
        with pytest.raises(StoreRejected, match="database not found"):
            await st.write([Sample("env", "s1", "gw", "d", T0, {"t": 1.5})])


async def test_influx_unrepresentable_name_is_rejected(influx_store: InfluxStore) -> None:
    with pytest.raises(StoreRejected, match="newline"):
        await influx_store.write([Sample("env", "s1", "gw", "bad\ndevice", T0, {"t": 1.5})])


async def test_influx_gzip(influxdb: InfluxServer) -> None:
    async with InfluxStore(influxdb.url, "gzip_test", gzip=True) as st:
        try:
            batch = [Sample("env", "s1", "gw", f"d{i}", T0 + i, {"t": i * 0.5}) for i in range(500)]
            await st.write(batch)
            assert await st.count("env") == 500
        finally:
            await st.drop_database()


async def test_influx_down_raises_store_error(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with InfluxStore(
        url, "db", timeout_s=1, retries=3, backoff_s=0.01, max_backoff_s=0.02, create_database=False
    ) as st:
        started = time.monotonic()
        with (
            caplog.at_level(logging.DEBUG, logger="shelterwatch.store.influx"),
            pytest.raises(StoreError) as info,
        ):
            await st.write([Sample("env", "s1", "gw", "d", T0, {"t": 1.5})])
        assert time.monotonic() - started < 5
    assert not isinstance(info.value, StoreRejected)
    message = str(info.value)
    assert url in message and "4 tries" in message and "running and reachable" in message
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.DEBUG]


async def test_influx_restarts_lose_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = InfluxServer(tmp_path / "influx")
    server.start()
    try:
        async with InfluxStore(
            server.url, "restarts", timeout_s=2, retries=12, backoff_s=0.05, max_backoff_s=0.5
        ) as st:

            def batch(n: int) -> list[Sample]:
                return [
                    Sample("vent", "s1", "gw", f"d{i % 7}", T0 + n * 1000 + i, {"rpm": i})
                    for i in range(200)
                ]

            await st.write(batch(0))
            server.stop()  # graceful
            server.start()
            await st.write(batch(1))  # the pooled connection is dead: the retry reconnects
            server.kill()  # crash: only the WAL holds the last batch
            server.start()
            await st.write(batch(2))

            # Server down while a write is pending: the write waits it out and then succeeds.
            server.stop()
            with caplog.at_level(logging.INFO, logger="shelterwatch.store.influx"):
                pending = asyncio.create_task(st.write(batch(3)))
                await asyncio.sleep(0.5)
                assert not pending.done()
                await asyncio.to_thread(server.start)
                await asyncio.wait_for(pending, 30)
            assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]

            server.kill()
            server.start()
            assert await st.count("vent") == 800
            assert await st.count("vent", "s1") == 800
    finally:
        server.stop()


# -- SQLite only ---------------------------------------------------------------------------


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "ts.db"
    async with SqliteStore(path) as st:
        await st.write([Sample("door", "s1", "gw", "d1", T0, {"open": False, "cycles": 12})])
        await st.write_status([DeviceStatus("s1", "gw", "d1", "door", T0, True, "", {"x": "y"})])
    assert path.exists()
    async with SqliteStore(path) as st:
        latest = _by_key(await st.latest("s1"))
        assert latest[("d1", "door", "open")].value is False
        assert latest[("d1", "door", "cycles")].value == 12
        assert await st.count("door") == 1
        assert await st.sites() == ["s1"]


# The schema before the district column, as shelterwatch 0.1 created it.
_SCHEMA_BEFORE_DISTRICT = """
CREATE TABLE samples (
    ts_ms INTEGER NOT NULL, measurement TEXT NOT NULL, site TEXT NOT NULL,
    gateway TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL, vtype TEXT NOT NULL,
    num, txt TEXT
);
CREATE UNIQUE INDEX samples_point ON samples (site, measurement, device, point, ts_ms, gateway);
CREATE TABLE device_status (
    site TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, online INTEGER NOT NULL, error TEXT NOT NULL, units TEXT NOT NULL,
    PRIMARY KEY (site, gateway, device)
);
INSERT INTO samples VALUES (1700000000000, 'door', 's1', 'gw', 'd1', 'cycles', 'i', 7, NULL);
INSERT INTO device_status VALUES ('s1', 'gw', 'd1', 'door', 1700000000000, 1, '', '{}');
"""


async def test_sqlite_adds_the_district_column_to_an_older_file(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(_SCHEMA_BEFORE_DISTRICT)
    async with SqliteStore(path) as st:
        # Old rows read as before, with no district.
        assert [(v.point, v.value) for v in await st.latest("s1")] == [("cycles", 7)]
        await st.write([Sample("door", "s1", "gw", "d1", T0 + 1, {"cycles": 8}, "xihu")])
        await st.write_status(
            [DeviceStatus("s1", "gw", "d1", "door", T0 + 1, True, "", {}, "xihu")]
        )
        assert await st.count("door") == 2
        assert await _stored_districts(st) == {
            ("door", "d1", None),
            ("door", "d1", "xihu"),
            ("device_status", "d1", "xihu"),
        }
    # Opening it again (now current) changes nothing.
    async with SqliteStore(path) as st:
        assert [(v.point, v.value) for v in await st.latest("s1")] == [("cycles", 8)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for table in ("samples", "device_status"):
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            assert columns.count("district") == 1


async def test_sqlite_is_wal_and_full_sync(sqlite_store: SqliteStore) -> None:
    import sqlite3

    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_sqlite_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        async with SqliteStore(tmp_path):  # a directory
            pass
    blocker = tmp_path / "file"
    blocker.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot create the directory"):
        async with SqliteStore(blocker / "sub" / "ts.db"):
            pass
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        async with SqliteStore(blocker):  # not a database
            pass


async def test_sqlite_not_open(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await SqliteStore(tmp_path / "x.db").count("x")


# -- factory -------------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path) -> None:
    st = open_store(f"sqlite:///{tmp_path}/a.db")  # tmp_path is absolute: four slashes
    assert isinstance(st, SqliteStore) and st.path == tmp_path / "a.db"
    st = open_store("sqlite:///data/ts.db")
    assert isinstance(st, SqliteStore) and st.path == Path("data/ts.db")

    st = open_store("influxdb://u%40x:p%3Ass@db.example:9999/shelter?gzip=true&retries=2")
    assert isinstance(st, InfluxStore)
    assert (st.url, st.database, st.gzip, st.retries) == (
        "http://db.example:9999",
        "shelter",
        True,
        2,
    )
    assert st._auth == ("u@x", "p:ss")
    st = open_store("influxdbs://h/db")
    assert isinstance(st, InfluxStore) and st.url == "https://h:8086"
    st = open_store("http://127.0.0.1:8086/db?timeout=2.5&retention=30d")
    assert isinstance(st, InfluxStore)
    assert (st.url, st.timeout_s, st.retention, st.gzip) == (
        "http://127.0.0.1:8086",
        2.5,
        "30d",
        False,
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "postgres://h/db",
        "influxdb://h:8086/",
        "influxdb://h:8086/a/b",
        "influxdb://:8086/db",
        "influxdb://h:port/db",
        "influxdb://h/db?gzip=maybe",
        "influxdb://h/db?retries=-1",
        "influxdb://h/db?colour=red",
        "influxdb://h/db?retention=forever",
        "sqlite://host/x.db",
        "sqlite:///",
    ],
)
def test_open_store_rejects(url: str) -> None:
    with pytest.raises(ConfigError, match="Accepted forms") as info:
        open_store(url)
    assert "sqlite:///" in str(info.value) and "influxdb://" in str(info.value)


def test_open_store_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        open_store("influxdb://user:secret@h/db?bogus=1")
    assert "secret" not in str(info.value)
