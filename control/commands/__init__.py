"""Commands to gateways: signing, dispatch over MQTT, and their outcomes."""

from control.commands.errors import CommandError, CommandUnavailable, InvalidCommand
from control.commands.records import UNKNOWN_ACTOR
from control.commands.service import MAX_TTL_S, CommandService
from control.commands.states import FINAL, RecordState

__all__ = [
    "FINAL",
    "MAX_TTL_S",
    "UNKNOWN_ACTOR",
    "CommandError",
    "CommandService",
    "CommandUnavailable",
    "InvalidCommand",
    "RecordState",
]
