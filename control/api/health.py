"""Liveness, for load balancers and the demo. Open on purpose: it says nothing but "up"."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from shelterwatch import __version__

router = APIRouter(prefix="/api/v1", tags=["health"])


class Health(BaseModel):
    status: str
    version: str


@router.get("/health")
async def health() -> Health:
    return Health(status="ok", version=__version__)
