"""The control database on both backends: migrations apply, and the schema matches the models."""

from __future__ import annotations

from sqlalchemy import inspect, select

from control.db import Base, Database, User


async def test_migrations_create_every_table(database: Database) -> None:
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_upgrade_is_idempotent_and_rows_round_trip(database: Database) -> None:
    await database.upgrade()
    async with database.session() as s:
        s.add(
            User(
                username="ops",
                full_name="运维",
                password_hash="x",
                role="viewer",
                created_ms=1,
                password_changed_ms=1,
            )
        )
        await s.commit()
    async with database.session() as s:
        user = (await s.execute(select(User))).scalar_one()
    assert (user.username, user.full_name, user.active, user.failed_logins) == (
        "ops",
        "运维",
        True,
        0,
    )
