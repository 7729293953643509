"""Fan-out: one siren.activate order per gateway, carrying that gateway's target sirens.
Pure logic, no IO.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from control.commands import MAX_TTL_S
from control.sirens.activations import activate_command_id
from shelterwatch.contract import SignalSpec, SirenKind, SirenOrder

__all__ = ["GatewayOrder", "command_ttl_s", "plan"]


@dataclass(frozen=True, slots=True)
class GatewayOrder:
    gateway: str
    command_id: str
    order: SirenOrder


def plan(
    activation: str,
    kind: SirenKind,
    signal: SignalSpec | None,
    exercise: str | None,
    targets: Iterable[tuple[str, str]],
) -> list[GatewayOrder]:
    """``targets`` are (gateway, device) pairs; one order per gateway, sorted by gateway,
    its sirens sorted and each named once."""
    by_gateway: dict[str, set[str]] = defaultdict(set)
    for gateway, device in targets:
        by_gateway[gateway].add(device)
    return [
        GatewayOrder(
            gateway=gateway,
            command_id=activate_command_id(activation, gateway),
            order=SirenOrder(
                activation=activation,
                kind=kind,
                sirens=sorted(devices),
                signal=signal,
                exercise=exercise,
            ),
        )
        for gateway, devices in sorted(by_gateway.items())
    ]


def command_ttl_s(
    kind: SirenKind, signal: SignalSpec | None, *, margin_s: float, silent_test_s: float
) -> float:
    """How long a command stays valid: the signal plus a margin for delivery and start (a
    gateway must not start a signal that the control service has already given up on), or
    the silent test's allowance; never past MAX_TTL_S."""
    if kind is SirenKind.SILENT_TEST or signal is None:
        return min(silent_test_s, MAX_TTL_S)
    return min(signal.duration_s + margin_s, MAX_TTL_S)
