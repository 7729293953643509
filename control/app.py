"""The control service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from control.alerts import AlertService
from control.api import (
    activations,
    alerts,
    areas,
    audit,
    auth,
    cap,
    commands,
    conversion_plans,
    conversions,
    exercises,
    health,
    history,
    maintenance,
    schedules,
    signals,
    siren_groups,
    sirens,
    sites,
    users,
    work_orders,
)
from control.api.guards import BodySizeLimit, DatabaseUnavailable
from control.areas import AreaStore
from control.audit.middleware import AuditMiddleware
from control.capfeed import CapFeed
from control.commands import CommandService
from control.console import MOUNT as CONSOLE_MOUNT
from control.console import create_console
from control.conversions import ConversionService
from control.db import Database
from control.maintenance import MaintenanceService
from control.maintenance.job import MaintenanceSweeper
from control.schedules import ScheduleService
from control.settings import ControlSettings
from control.sirens import SirenService
from shelterwatch import __version__
from shelterwatch.signals import load_signals
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
            signals = load_signals(settings.sirens.signals_file)
            command_service = CommandService(settings, db)
            # Made before the command service opens: its publisher runs in every session.
            cap_feed = CapFeed(settings, db, command_service, signals)
            conversion_service = ConversionService(settings, db, command_service, store)
            # Loads and checks the maintenance programme: a bad region file stops the start.
            maintenance_service = MaintenanceService(settings, db, store)
            async with (
                command_service,
                AlertService(settings, db) as alert_service,
                SirenService(
                    settings, db, command_service, store, listener=cap_feed
                ) as siren_service,
                ScheduleService(
                    db,
                    signals,
                    siren_service,
                    grace_s=settings.schedules.grace_s,
                    poll_s=settings.schedules.poll_s,
                    programmes=cap_feed,
                ) as schedule_service,
                conversion_service,
                MaintenanceSweeper(
                    maintenance_service, siren_service, settings.maintenance.sweep_interval_s
                ),
            ):
                yield {
                    "settings": settings,
                    "db": db,
                    "store": store,
                    "commands": command_service,
                    "alerts": alert_service,
                    "sirens": siren_service,
                    "schedules": schedule_service,
                    "cap": cap_feed,
                    "conversions": conversion_service,
                    "maintenance": maintenance_service,
                    "areas": AreaStore(db),
                }

    app = FastAPI(title="Shelterwatch control", version=__version__, lifespan=lifespan)
    for module in (health, auth, users, areas, sites, history, commands, alerts, audit, schedules):
        app.include_router(module.router)
    app.router.routes.append(activations.from_cap_other_methods)
    for module in (sirens, siren_groups, signals, activations):
        app.include_router(module.router)
    app.include_router(activations.preview_router)
    app.include_router(cap.router)
    app.include_router(cap.activation_router)
    app.include_router(conversion_plans.router)
    app.include_router(conversions.router)
    app.include_router(maintenance.router)
    app.include_router(work_orders.router)
    app.include_router(exercises.router)
    # The built-in console (its pages and static files), outside the API's spec.
    app.mount(CONSOLE_MOUNT, create_console())
    # Oversized bodies are refused (413) before anything reads them; inside the audit
    # middleware, so that the refusal is audited too.
    app.add_middleware(BodySizeLimit)
    # Every mutating request leaves an audit row, whoever handles it.
    app.add_middleware(AuditMiddleware)
    # The database unreachable: 503 with a clear message, also when the audit row cannot be
    # written (so outside the audit middleware).
    app.add_middleware(DatabaseUnavailable)
    return app
