"""The control service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from control.api import health, sites
from control.settings import ControlSettings
from shelterwatch import __version__
from shelterwatch.store.factory import open_store

__all__ = ["create_app"]


def create_app(settings: ControlSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_store(settings.store_url) as store:
            yield {"store": store, "api_token": settings.api_token.get_secret_value()}

    app = FastAPI(title="Shelterwatch control", version=__version__, lifespan=lifespan)
    app.include_router(health.router)
    app.include_router(sites.router)
    return app
