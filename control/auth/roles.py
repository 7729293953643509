"""Roles and what each may do: the one place that decides who is allowed what.

Roles form a ladder. Each role may do everything the roles below it may do, and more:

    viewer < maintainer < duty_officer < commander < admin

A route asks for a *permission*; ``MINIMUM_ROLE`` says the lowest role that holds it. A ladder
rather than free-form sets keeps the answer to "can X do Y?" one comparison, and makes the
table in docs/security.md short enough to check by eye. If a duty ever has to be *withheld*
from a higher role (separation of duties), add that as an explicit rule here, not in a route.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MINIMUM_ROLE", "ROLE_ORDER", "Permission", "Role", "allows", "two_person_rule"]


class Role(StrEnum):
    VIEWER = "viewer"
    MAINTAINER = "maintainer"
    DUTY_OFFICER = "duty_officer"
    COMMANDER = "commander"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLE_ORDER.index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


# Lowest first. The order *is* the permission model: keep it in step with docs/security.md.
ROLE_ORDER: tuple[Role, ...] = (
    Role.VIEWER,
    Role.MAINTAINER,
    Role.DUTY_OFFICER,
    Role.COMMANDER,
    Role.ADMIN,
)


class Permission(StrEnum):
    # Reading telemetry: sites and their latest readings.
    SITES_READ = "sites.read"
    # Reading the audit trail.
    AUDIT_READ = "audit.read"
    # Reading commands and their outcomes.
    COMMANDS_READ = "commands.read"
    # Device commands that make no sound and change no protection state (silent siren test,
    # maintenance actions such as a fan run).
    COMMANDS_MAINTENANCE = "commands.maintenance"
    # Audible tests, drills, and requesting live alerts or conversions.
    COMMANDS_OPERATE = "commands.operate"
    # Approving a live alert or a conversion requested by someone else.
    COMMANDS_APPROVE = "commands.approve"
    # User accounts: create, list, change role, reset password, disable.
    USERS_MANAGE = "users.manage"
    # Reading alerts, their history and their notifications.
    ALERTS_READ = "alerts.read"
    # Acknowledging an alert: the person on site who takes it in hand (a maintainer fixing
    # the equipment, or any duty officer or commander above).
    ALERTS_ACK = "alerts.ack"
    # Reading siren posts, groups, signals, activations and their reports.
    SIRENS_READ = "sirens.read"
    # Changing the siren inventory (posts, groups, imports): it decides which device sounds
    # when an activation names a siren, so it sits with the commanders who approve alerts.
    SIRENS_MANAGE = "sirens.manage"
    # Reading maintenance: the programme, each site's items and evidence, readiness, reports
    # and work orders.
    MAINTENANCE_READ = "maintenance.read"
    # Maintenance writes: confirming an item done, creating, starting, closing and cancelling
    # work orders, and the sweep. The maintainer who does the work records it.
    MAINTENANCE_WRITE = "maintenance.write"


MINIMUM_ROLE: dict[Permission, Role] = {
    Permission.SITES_READ: Role.VIEWER,
    Permission.AUDIT_READ: Role.COMMANDER,
    Permission.COMMANDS_READ: Role.VIEWER,
    Permission.COMMANDS_MAINTENANCE: Role.MAINTAINER,
    Permission.COMMANDS_OPERATE: Role.DUTY_OFFICER,
    Permission.COMMANDS_APPROVE: Role.COMMANDER,
    Permission.USERS_MANAGE: Role.ADMIN,
    Permission.ALERTS_READ: Role.VIEWER,
    Permission.ALERTS_ACK: Role.MAINTAINER,
    Permission.SIRENS_READ: Role.VIEWER,
    Permission.SIRENS_MANAGE: Role.COMMANDER,
    Permission.MAINTENANCE_READ: Role.VIEWER,
    Permission.MAINTENANCE_WRITE: Role.MAINTAINER,
}


def allows(role: Role, permission: Permission) -> bool:
    return role.at_least(MINIMUM_ROLE[permission])


def two_person_rule(requested_by: str, approver: str) -> bool:
    """Separation of duties: whoever requested a live alert may not approve it, whatever
    their role (a commander's own request needs another commander). The ladder alone would
    let a commander approve their own request; this rule withholds exactly that."""
    return requested_by.casefold() != approver.casefold()
