"""Shared fixtures: real Mosquitto and InfluxDB servers for the session, and fresh stores.

The servers come from Debian packages; ``make test`` installs them. They run on free loopback
ports with everything under pytest's temp dir, and never touch a system Mosquitto on 1883.
``tests/`` is on sys.path (rootdir conftest, no __init__.py), so tests import ``servers``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from servers import InfluxServer, MosquittoServer, ServerError

from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.sqlite import SqliteStore


def _start(factory: type[MosquittoServer] | type[InfluxServer], tmpdir: Path) -> Iterator[object]:
    try:
        server = factory(tmpdir)
        server.start()
    except ServerError as exc:
        pytest.fail(f"{exc}\n(`make test` installs mosquitto and influxdb)", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A Mosquitto broker for the whole session: ``.host``, ``.port``, ``.url``, restart()."""
    yield from _start(MosquittoServer, tmp_path_factory.mktemp("mosquitto"))  # type: ignore[misc]


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """An InfluxDB 1.x server for the whole session: ``.url``, ``.port``, restart()."""
    yield from _start(InfluxServer, tmp_path_factory.mktemp("influxdb"))  # type: ignore[misc]


@pytest.fixture
async def influx_store(influxdb: InfluxServer) -> AsyncIterator[InfluxStore]:
    """An opened InfluxStore on a fresh database of its own, dropped afterwards."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    async with InfluxStore(influxdb.url, database, timeout_s=5, retries=2, backoff_s=0.05) as st:
        try:
            yield st
        finally:
            if influxdb.running:
                await st.drop_database()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An opened SqliteStore on a new file under tmp_path."""
    async with SqliteStore(tmp_path / "store" / "samples.db") as st:
        yield st
