"""The area tree in the control database: the revision in force, imports, and a cache.

Every request needs the tree to decide scope, so it is kept in memory and reloaded only when
a newer revision appears (one indexed ``max(revision)`` per request): an import on one replica
applies on every replica at their next request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from control.areas.errors import AreaError, AreaInUse
from control.areas.tree import Area, AreaTree, Level
from control.audit import append_audit
from control.auth.accounts import now_ms
from control.db import AreaTreeRecord, Database, User

__all__ = ["AreaStore"]

log = logging.getLogger(__name__)


def _encode(tree: AreaTree) -> str:
    rows = [
        {
            "code": a.code,
            "name": a.name,
            "level": a.level.value,
            "parent": a.parent,
            "gateways": list(a.gateways),
        }
        for a in tree.walk(tree.root_code())
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _decode(body: str, revision: int) -> AreaTree:
    rows = json.loads(body)
    areas = [
        Area(r["code"], r["name"], Level(r["level"]), r["parent"], tuple(r["gateways"]))
        for r in rows
    ]
    return AreaTree.build(areas, revision=revision)


class AreaStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._tree = AreaTree()
        self._lock = asyncio.Lock()

    async def current(self) -> AreaTree:
        async with self.db.session() as s:
            newest = (await s.execute(select(func.max(AreaTreeRecord.revision)))).scalar()
        if (newest or 0) == self._tree.revision:
            return self._tree
        async with self._lock:
            if newest is not None and newest != self._tree.revision:
                async with self.db.session() as s:
                    row = await s.get(AreaTreeRecord, newest)
                if row is not None:
                    self._tree = _decode(row.body, row.revision)
        return self._tree

    async def replace(self, tree: AreaTree, *, actor: str) -> AreaTree:
        """Put ``tree`` in force as the next revision, unless it removes an area that a user
        still belongs to (move those users first: a user with a vanished area would silently
        lose every right)."""
        body = _encode(tree)
        digest = hashlib.sha256(body.encode()).hexdigest()
        async with self.db.session() as s:
            in_use = (
                await s.execute(select(User.username, User.area).where(User.area.is_not(None)))
            ).all()
            orphans = sorted(f"{u} ({a})" for u, a in in_use if a not in tree.areas)
            if orphans:
                shown = ", ".join(orphans[:10]) + (" …" if len(orphans) > 10 else "")
                raise AreaInUse(
                    f"the new tree drops areas that {len(orphans)} user(s) belong to: {shown}; "
                    "move them to another area first (PUT /api/v1/users/{username}/area)"
                )
            newest = (await s.execute(select(func.max(AreaTreeRecord.revision)))).scalar()
            revision = (newest or 0) + 1
            s.add(
                AreaTreeRecord(
                    revision=revision,
                    body=body,
                    digest=digest,
                    areas=len(tree.areas),
                    imported_by=actor,
                    imported_ms=now_ms(),
                )
            )
            try:
                await s.commit()
            except IntegrityError as exc:
                raise AreaError(
                    "another import landed at the same moment; read the tree and try again"
                ) from exc
        counts = {level.value: 0 for level in Level}
        for area in tree.areas.values():
            counts[area.level.value] += 1
        await append_audit(
            self.db,
            actor=actor,
            action="areas.import",
            target=f"areas:r{revision}",
            params={"digest": digest, "counts": counts},
            result="imported",
        )
        log.info("area tree revision %d imported by %s: %s", revision, actor, counts)
        return await self.current()
