"""The rules of an activation: who may start which kind, its states, its command ids and
lifetimes, and when an audible test may sound a full signal. Pure logic, no IO.

    live:      pending_approval ──approve──▶ active ──▶ completed | completed_with_failures
                     │ └─reject─▶ rejected       │
                     │ └─window over─▶ expired   └─cancel─▶ cancelling ──▶ cancelled
                     └─cancel (withdrawn)─▶ cancelled
    the others start ``active`` at once.

An activation is final when every target is final (see outcomes.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from control.auth import Permission
from shelterwatch.contract import SirenKind

__all__ = [
    "ACTIVATION_ID_PREFIX",
    "FINAL_STATES",
    "KIND_PERMISSION",
    "ActivationState",
    "activate_command_id",
    "cancel_command_id",
    "is_test_day",
    "new_activation_id",
    "parse_cancel_command_id",
]

ACTIVATION_ID_PREFIX = "act-"
_CANCEL_PREFIX = "cancel-"


class ActivationState(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # a live alert waiting for a second person
    ACTIVE = "active"  # commands sent (or queued); sirens answering
    CANCELLING = "cancelling"  # cancel sent; waiting for the sirens to confirm
    COMPLETED = "completed"  # every siren did what was asked
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # nobody approved it in time; nothing was sent
    REJECTED = "rejected"  # the approver said no; nothing was sent


FINAL_STATES = frozenset(
    {
        ActivationState.COMPLETED,
        ActivationState.COMPLETED_WITH_FAILURES,
        ActivationState.CANCELLED,
        ActivationState.EXPIRED,
        ActivationState.REJECTED,
    }
)

# Who may start (and so cancel) each kind. Approving a live alert needs COMMANDS_APPROVE and
# another person (control.auth.two_person_rule).
KIND_PERMISSION: dict[SirenKind, Permission] = {
    SirenKind.SILENT_TEST: Permission.COMMANDS_MAINTENANCE,
    SirenKind.AUDIBLE_TEST: Permission.COMMANDS_OPERATE,
    SirenKind.DRILL: Permission.COMMANDS_OPERATE,
    SirenKind.LIVE: Permission.COMMANDS_OPERATE,
}


def new_activation_id() -> str:
    # Short enough that "<id>-<gateway>" fits a command id (128) with any gateway slug (64).
    return f"{ACTIVATION_ID_PREFIX}{secrets.token_hex(6)}"


def activate_command_id(activation: str, gateway: str) -> str:
    """The one siren.activate command of an activation to a gateway. Deterministic, so a
    dispatch that runs twice (a retry, a second replica) makes the same command, once."""
    return f"{activation}-{gateway}"


def cancel_command_id(activation: str, gateway: str) -> str:
    return f"{_CANCEL_PREFIX}{activation}-{gateway}"


def parse_cancel_command_id(command_id: str) -> str | None:
    """The activation a cancel command belongs to, or None if it is not one of ours."""
    if not command_id.startswith(_CANCEL_PREFIX + ACTIVATION_ID_PREFIX):
        return None
    rest = command_id[len(_CANCEL_PREFIX) :]
    size = len(ACTIVATION_ID_PREFIX) + 12
    return rest[:size] if len(rest) > size and rest[size] == "-" else None


def is_test_day(now_ms: int, test_days: list[str], timezone: str) -> bool:
    """Whether ``now_ms`` falls on one of ``test_days`` (MM-DD) in ``timezone``."""
    local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone))
    return local.strftime("%m-%d") in test_days
