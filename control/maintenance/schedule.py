"""Due, done and overdue per site and item. Pure logic, no IO.

An item's due date counts from its last completion (or, never done, from the programme's
start at the site, ``anchor_ms``): ``due = last + period``. At ``now`` the item is

- ``overdue`` past its due date;
- ``due`` within the programme's ``lead_days`` before it;
- ``done`` when done and not yet due again;
- ``scheduled`` when never done and not yet due (a programme just adopted).

A completion comes from telemetry (``evidence.py``, one per device) or from a person's
confirmation with a note. An item with telemetry evidence covers *every* device of its kind
at the site: three doors are cycled when each of them was, so the telemetry completion is the
oldest of the devices' newest ones. A person's confirmation covers the site's item at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from control.maintenance.programme import Item, Programme

__all__ = ["DAY_MS", "Completion", "ItemState", "ItemStatus", "item_status", "site_status"]

DAY_MS = 86_400_000
ItemState = Literal["done", "scheduled", "due", "overdue"]
Source = Literal["telemetry", "manual"]


@dataclass(frozen=True, slots=True)
class Completion:
    item: str
    ts_ms: int
    source: Source
    device: str = ""
    actor: str = ""
    note: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ItemStatus:
    item: Item
    state: ItemState
    due_ms: int
    last: Completion | None
    # Every completion between the report's start and now, oldest first.
    done_in_period: tuple[Completion, ...] = field(default_factory=tuple)


def _last_done(
    completions: Sequence[Completion], devices: Sequence[str], now_ms: int
) -> Completion | None:
    past = [c for c in completions if c.ts_ms <= now_ms]
    manual = max((c for c in past if c.source == "manual"), key=lambda c: c.ts_ms, default=None)
    newest: dict[str, Completion] = {}
    for c in past:
        if c.source == "telemetry" and (c.device not in newest or newest[c.device].ts_ms < c.ts_ms):
            newest[c.device] = c
    telemetry: Completion | None = None
    if devices and all(d in newest for d in devices):
        telemetry = min((newest[d] for d in devices), key=lambda c: c.ts_ms)
    found = [c for c in (manual, telemetry) if c is not None]
    return max(found, key=lambda c: c.ts_ms) if found else None


def item_status(
    item: Item,
    completions: Sequence[Completion],
    *,
    devices: Sequence[str],
    now_ms: int,
    anchor_ms: int,
    lead_days: int,
    since_ms: int | None = None,
) -> ItemStatus:
    """``devices``: the site's devices the item's detector reads (none: manual only)."""
    mine = sorted((c for c in completions if c.item == item.key), key=lambda c: c.ts_ms)
    last = _last_done(mine, devices, now_ms)
    due_ms = (last.ts_ms if last else anchor_ms) + item.period_days * DAY_MS
    state: ItemState
    if now_ms > due_ms:
        state = "overdue"
    elif due_ms - now_ms <= lead_days * DAY_MS:
        state = "due"
    else:
        state = "done" if last else "scheduled"
    start = since_ms if since_ms is not None else now_ms - item.period_days * DAY_MS
    in_period = tuple(c for c in mine if start <= c.ts_ms <= now_ms)
    return ItemStatus(item, state, due_ms, last, in_period)


def site_status(
    programme: Programme,
    completions: Iterable[Completion],
    *,
    devices_by_item: dict[str, Sequence[str]],
    now_ms: int,
    anchor_ms: int,
    since_ms: int | None = None,
) -> list[ItemStatus]:
    done = list(completions)
    return [
        item_status(
            item,
            done,
            devices=devices_by_item.get(item.key, ()),
            now_ms=now_ms,
            anchor_ms=anchor_ms,
            lead_days=programme.lead_days,
            since_ms=since_ms,
        )
        for item in programme.items
    ]
