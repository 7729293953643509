"""Start-up checks of the control service's accounts."""

from __future__ import annotations

import logging

from control.auth.accounts import Accounts
from control.auth.sessions import hashing_for
from control.db import Database
from control.settings import ControlSettings

__all__ = ["warn_if_no_users"]

log = logging.getLogger(__name__)


async def warn_if_no_users(db: Database, settings: ControlSettings) -> bool:
    """Log how to create the first admin when there is no user at all; True if none."""
    if await Accounts(db, hashing_for(settings)).count():
        return False
    # Nobody can sign in, and no route but /health answers: say what to do, loudly, once.
    log.warning(
        "the control service has no users, so nobody can sign in; create an admin with "
        "`shelterwatch users create <name> --role admin --config <this service's settings>`"
    )
    return True
