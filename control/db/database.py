"""Engine, sessions and migrations for the control database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import event, false, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shelterwatch.errors import ConfigError

__all__ = ["Database", "async_url"]

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """``sqlite:///x.db`` or ``postgresql://...`` with the async driver filled in."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url {url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ConfigError(
            f"database_url {url!r}: use sqlite:///path.db or postgresql://user@host/db"
        )
    return parsed.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


class Database:
    """``async with Database(url) as db:`` then ``async with db.session() as s:``."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.backend = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.backend == "sqlite":
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One connection at a time writes anyway; a wait beats "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def write_lock(self, s: AsyncSession, model: type[Any]) -> None:
        """Take the database's write lock now, before the transaction reads anything.

        ``SELECT ... FOR UPDATE`` serialises read-modify-write on PostgreSQL; SQLite ignores
        it, and its deferred transactions take the write lock only at their first write,
        after their reads. Two transactions could then read the same row and the later
        commit would silently undo the earlier one (a siren's answer overwritten by the
        sweep). On SQLite, a write that matches no row as the first statement takes the
        lock: every other writer waits until this transaction ends. A no-op elsewhere.
        """
        if self.backend == "sqlite":
            key = next(iter(model.__table__.primary_key.columns))
            await s.execute(update(model).where(false()).values({key.name: key}))

    async def upgrade(self) -> None:
        """Apply every Alembic migration (``alembic upgrade head``)."""
        await asyncio.to_thread(command.upgrade, alembic_config(self.url), "head")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would read a % in a password as a reference.
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
