"""The control service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from control.alerts import AlertService
from control.api import alerts, audit, auth, commands, health, sites, users
from control.audit.middleware import AuditMiddleware
from control.commands import CommandService
from control.db import Database
from control.settings import ControlSettings
from shelterwatch import __version__
from shelterwatch.store.factory import open_store

__all__ = ["create_app"]


def create_app(settings: ControlSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with (
            Database(settings.database_url) as db,
            open_store(settings.store_url) as store,
        ):
            if settings.migrate_on_start:
                await db.upgrade()
            async with (
                CommandService(settings, db) as command_service,
                AlertService(settings, db) as alert_service,
            ):
                yield {
                    "settings": settings,
                    "db": db,
                    "store": store,
                    "commands": command_service,
                    "alerts": alert_service,
                }

    app = FastAPI(title="Shelterwatch control", version=__version__, lifespan=lifespan)
    for module in (health, auth, users, sites, commands, alerts, audit):
        app.include_router(module.router)
    # Every mutating request leaves an audit row, whoever handles it.
    app.add_middleware(AuditMiddleware)
    return app
