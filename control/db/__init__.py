"""The control service's SQL database: models, engine and migrations."""

from control.db.database import Database, async_url
from control.db.models import ApiToken, AuditEntry, Base, CommandEvent, CommandRecord, User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "CommandEvent",
    "CommandRecord",
    "Database",
    "User",
    "async_url",
]
