"""Shared fixtures: real Mosquitto and InfluxDB servers for the session, and fresh stores.

The servers come from Debian packages; ``make test`` installs them. They run on free loopback
ports with everything under pytest's temp dir, and never touch a system Mosquitto on 1883.
``tests/`` is on sys.path (rootdir conftest, no __init__.py), so tests import ``servers``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from servers import InfluxServer, MosquittoServer, ServerError

from control.db import Database
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


# -- the control database: SQLite and PostgreSQL ------------------------------------------------

PG_ADMIN_URL = os.environ.get(
    "SHELTERWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextlib.asynccontextmanager
async def pg_test_database() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards; yields its URL."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    name = f"sw_test_{uuid.uuid4().hex[:12]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = await asyncpg.connect(dsn)
    except OSError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); `make test` starts one",
            pytrace=False,
        )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty control database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.db'}"
        return
    async with pg_test_database() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """An opened, migrated control Database, on each backend."""
    async with Database(database_url) as db:
        await db.upgrade()
        yield db
