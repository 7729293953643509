"""The siren inventory in the control database: posts, groups, and resolving targets.

Each function runs in its own transaction. Groups name their members by siren id and their
districts by name; ``all`` is a group of every siren, built in. Deleting a siren removes it
from the groups that list it, in the same transaction, so no group names a siren that is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import Database, SirenGroup, SirenPost
from control.sirens.errors import Conflict, NotFound, UnknownTarget
from control.sirens.models import GroupIn, SirenCreate, SirenFields

__all__ = [
    "ALL_GROUP",
    "create_group",
    "create_siren",
    "delete_group",
    "delete_siren",
    "get_group",
    "get_siren",
    "group_sirens",
    "list_groups",
    "list_sirens",
    "now_ms",
    "resolve",
    "update_group",
    "update_siren",
    "upsert",
]

ALL_GROUP = "all"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fields(body: SirenFields) -> dict[str, object]:
    return body.model_dump(include=set(SirenFields.model_fields))


async def get_siren(db: Database, siren_id: str) -> SirenPost:
    async with db.session() as s:
        post = await s.get(SirenPost, siren_id)
    if post is None:
        raise NotFound(f"no siren {siren_id!r}")
    return post


async def list_sirens(
    db: Database, *, district: str | None = None, ids: Iterable[str] | None = None
) -> list[SirenPost]:
    query = select(SirenPost).order_by(SirenPost.id)
    if district is not None:
        query = query.where(SirenPost.district == district)
    if ids is not None:
        query = query.where(SirenPost.id.in_(list(ids)))
    async with db.session() as s:
        return list(await s.scalars(query))


def _conflict(exc: IntegrityError, siren_id: str, body: SirenFields) -> Conflict:
    return Conflict(
        f"siren {siren_id!r}: the id is taken, or {body.gateway}/{body.device} is already "
        "another siren's controller (one controller drives one siren post)"
    )


async def create_siren(db: Database, body: SirenCreate) -> SirenPost:
    now = now_ms()
    post = SirenPost(
        id=body.id, **_fields(body), last_test_detail="", created_ms=now, updated_ms=now
    )
    try:
        async with db.session() as s, s.begin():
            s.add(post)
    except IntegrityError as exc:
        raise _conflict(exc, body.id, body) from exc
    return post


async def update_siren(db: Database, siren_id: str, body: SirenFields) -> SirenPost:
    try:
        async with db.session() as s, s.begin():
            post = await s.get(SirenPost, siren_id, with_for_update=True)
            if post is None:
                raise NotFound(f"no siren {siren_id!r}")
            for key, value in _fields(body).items():
                setattr(post, key, value)
            post.updated_ms = now_ms()
    except IntegrityError as exc:
        raise _conflict(exc, siren_id, body) from exc
    return post


async def delete_siren(db: Database, siren_id: str) -> list[str]:
    """Delete a siren; returns the groups it was removed from. Past activations keep it."""
    async with db.session() as s, s.begin():
        post = await s.get(SirenPost, siren_id, with_for_update=True)
        if post is None:
            raise NotFound(f"no siren {siren_id!r}")
        await s.delete(post)
        changed = []
        for group in await s.scalars(select(SirenGroup).with_for_update()):
            members = json.loads(group.members)
            if siren_id in members:
                group.members = json.dumps([m for m in members if m != siren_id])
                group.updated_ms = now_ms()
                changed.append(group.name)
        return changed


async def upsert(
    db: Database, sirens: Sequence[SirenCreate], groups: dict[str, GroupIn]
) -> tuple[int, int]:
    """Create or update every siren and group in ONE transaction: all or nothing.
    Returns (created, updated) counts of sirens and groups together."""
    created = updated = 0
    now = now_ms()
    try:
        async with db.session() as s, s.begin():
            for body in sirens:
                post = await s.get(SirenPost, body.id, with_for_update=True)
                if post is None:
                    s.add(
                        SirenPost(
                            id=body.id,
                            **_fields(body),
                            last_test_detail="",
                            created_ms=now,
                            updated_ms=now,
                        )
                    )
                    created += 1
                else:
                    for key, value in _fields(body).items():
                        setattr(post, key, value)
                    post.updated_ms = now
                    updated += 1
            await s.flush()
            known = set(await s.scalars(select(SirenPost.id)))
            for name, group in groups.items():
                _check_members(group, known)
                row = await s.get(SirenGroup, name, with_for_update=True)
                if row is None:
                    s.add(_group_row(name, group, now))
                    created += 1
                else:
                    _set_group(row, group, now)
                    updated += 1
    except IntegrityError as exc:
        raise Conflict(
            f"the import names one gateway/device for two sirens ({exc.orig}); nothing was imported"
        ) from exc
    return created, updated


# -- groups --------------------------------------------------------------------------------------


def _check_members(group: GroupIn, known: set[str]) -> None:
    missing = sorted(set(group.members) - known)
    if missing:
        raise UnknownTarget(sirens=missing)


def _group_row(name: str, body: GroupIn, now: int) -> SirenGroup:
    row = SirenGroup(name=name, created_ms=now, updated_ms=now)
    _set_group(row, body, now)
    return row


def _set_group(row: SirenGroup, body: GroupIn, now: int) -> None:
    row.description = body.description
    row.members = json.dumps(sorted(set(body.members)))
    row.districts = json.dumps(sorted(set(body.districts)))
    row.updated_ms = now


async def _known_ids(s: AsyncSession, ids: Iterable[str]) -> set[str]:
    wanted = list(set(ids))
    if not wanted:
        return set()
    return set(await s.scalars(select(SirenPost.id).where(SirenPost.id.in_(wanted))))


async def create_group(db: Database, name: str, body: GroupIn) -> SirenGroup:
    if name == ALL_GROUP:
        raise Conflict(f"{ALL_GROUP!r} is built in (every siren); choose another name")
    try:
        async with db.session() as s, s.begin():
            _check_members(body, await _known_ids(s, body.members))
            row = _group_row(name, body, now_ms())
            s.add(row)
    except IntegrityError as exc:
        raise Conflict(f"a group {name!r} exists already; update it with PUT") from exc
    return row


async def update_group(db: Database, name: str, body: GroupIn) -> SirenGroup:
    async with db.session() as s, s.begin():
        row = await s.get(SirenGroup, name, with_for_update=True)
        if row is None:
            raise NotFound(f"no group {name!r}")
        _check_members(body, await _known_ids(s, body.members))
        _set_group(row, body, now_ms())
    return row


async def delete_group(db: Database, name: str) -> None:
    async with db.session() as s, s.begin():
        result = await s.execute(delete(SirenGroup).where(SirenGroup.name == name))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no group {name!r}")


async def get_group(db: Database, name: str) -> SirenGroup:
    async with db.session() as s:
        row = await s.get(SirenGroup, name)
    if row is None:
        raise NotFound(f"no group {name!r}")
    return row


async def list_groups(db: Database, limit: int = 1000) -> list[SirenGroup]:
    async with db.session() as s:
        return list(await s.scalars(select(SirenGroup).order_by(SirenGroup.name).limit(limit)))


def group_sirens(group: SirenGroup, posts: Iterable[SirenPost]) -> list[str]:
    """The ids of the sirens a group means now: its members plus its districts' sirens."""
    members = set(json.loads(group.members))
    districts = set(json.loads(group.districts))
    return sorted(p.id for p in posts if p.id in members or p.district in districts)


async def resolve(
    db: Database,
    *,
    sirens: Sequence[str],
    groups: Sequence[str],
    visible: Callable[[SirenPost], bool] | None = None,
) -> list[SirenPost]:
    """The posts that siren ids and group names stand for, each once, sorted by id.

    Raises UnknownTarget naming every unknown siren and group (nothing is partly resolved).
    With ``visible`` (the caller's area), a named siren it hides is unknown, as is a group
    with no visible member, and ``all`` means every visible siren; any other group still
    resolves to all its members, for the caller to refuse if some lie out of reach (never to
    narrow it silently).
    """
    async with db.session() as s:
        posts = {p.id: p for p in await s.scalars(select(SirenPost))}
        named = [g for g in set(groups) if g != ALL_GROUP]
        rows = (
            {
                g.name: g
                for g in await s.scalars(select(SirenGroup).where(SirenGroup.name.in_(named)))
            }
            if named
            else {}
        )
    seen = posts if visible is None else {i: p for i, p in posts.items() if visible(p)}
    if visible is not None:
        # A group with no member in reach is not listed to the caller: unknown to them too.
        rows = {n: g for n, g in rows.items() if set(group_sirens(g, posts.values())) & seen.keys()}
    unknown_sirens = sorted(set(sirens) - seen.keys())
    unknown_groups = sorted(set(named) - rows.keys())
    if unknown_sirens or unknown_groups:
        raise UnknownTarget(sirens=unknown_sirens, groups=unknown_groups)
    chosen = set(sirens)
    if ALL_GROUP in groups:
        chosen |= seen.keys()
    for row in rows.values():
        chosen.update(group_sirens(row, posts.values()))
    return [posts[i] for i in sorted(chosen)]
