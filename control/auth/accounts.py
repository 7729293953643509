"""User accounts in the control database: create, list, change role, reset, disable.

Used by the HTTP API (``/api/v1/users``) and by ``shelterwatch users``, so both paths check
the same rules and leave the same audit rows. Every change is audited after it commits;
``actor`` names who did it (a username, or ``cli:<os user>`` for the command line).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.audit import append_audit
from control.auth.errors import BadPassword, BadUsername, LastAdmin, UserExists, UserNotFound
from control.auth.passwords import Hashing, check_password_rules
from control.auth.roles import Role
from control.db import ApiToken, Database, User

__all__ = [
    "USERNAME_PATTERN",
    "Accounts",
    "UserInfo",
    "now_ms",
]

# Lower case, so "Admin" and "admin" can never be two people.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class UserInfo:
    """What may be shown about a user: never the hash."""

    username: str
    full_name: str
    role: Role
    active: bool
    failed_logins: int
    locked_until_ms: int | None
    created_ms: int
    password_changed_ms: int
    area: str | None = None

    @classmethod
    def of(cls, user: User) -> UserInfo:
        return cls(
            username=user.username,
            full_name=user.full_name,
            role=Role(user.role),
            active=user.active,
            failed_logins=user.failed_logins,
            locked_until_ms=user.locked_until_ms,
            created_ms=user.created_ms,
            password_changed_ms=user.password_changed_ms,
            area=user.area,
        )


class Accounts:
    def __init__(self, db: Database, hashing: Hashing) -> None:
        self.db = db
        self.hashing = hashing

    async def count(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(User))).scalar_one())

    async def list(self) -> list[UserInfo]:
        async with self.db.session() as s:
            users = (await s.execute(select(User).order_by(User.username))).scalars()
            return [UserInfo.of(u) for u in users]

    async def get(self, username: str) -> UserInfo:
        async with self.db.session() as s:
            return UserInfo.of(await _user(s, username))

    async def create(
        self,
        *,
        actor: str,
        username: str,
        password: str,
        role: Role,
        full_name: str = "",
        area: str | None = None,
    ) -> UserInfo:
        if not _USERNAME.fullmatch(username):
            raise BadUsername(
                f"username {username!r}: use 1 to 64 of a-z, 0-9, '_', '.', '-', "
                "starting with a letter or digit"
            )
        password_hash = await self._hash(password)
        now = now_ms()
        async with self.db.session() as s:
            if await _find(s, username) is not None:
                raise UserExists(f"user {username!r} exists")
            user = User(
                username=username,
                full_name=full_name,
                password_hash=password_hash,
                role=role.value,
                active=True,
                failed_logins=0,
                created_ms=now,
                password_changed_ms=now,
                area=area,
            )
            s.add(user)
            await s.commit()
            info = UserInfo.of(user)
        await append_audit(
            self.db,
            actor=actor,
            action="users.create",
            target=f"user:{username}",
            params={"role": role.value, "full_name": full_name, "area": area},
            result="created",
        )
        return info

    async def set_role(self, *, actor: str, username: str, role: Role) -> UserInfo:
        async with self.db.session() as s:
            user = await _user(s, username, lock=True)
            old = Role(user.role)
            if old is Role.ADMIN and role is not Role.ADMIN and user.active:
                await _keep_an_admin(s, user)
            user.role = role.value
            await s.commit()
            info = UserInfo.of(user)
        await append_audit(
            self.db,
            actor=actor,
            action="users.set_role",
            target=f"user:{username}",
            params={"from": old.value, "to": role.value},
            result="changed",
        )
        return info

    async def set_area(self, *, actor: str, username: str, area: str | None) -> UserInfo:
        """Move a user to another command area (None: every area). The caller checks that
        the area exists and that they may place people there; the session follows at once,
        since each request reads the user's area afresh."""
        async with self.db.session() as s:
            user = await _user(s, username, lock=True)
            old = user.area
            user.area = area
            await s.commit()
            info = UserInfo.of(user)
        await append_audit(
            self.db,
            actor=actor,
            action="users.set_area",
            target=f"user:{username}",
            params={"from": old, "to": area},
            result="changed",
        )
        return info

    async def reset_password(self, *, actor: str, username: str, password: str) -> UserInfo:
        """Set a new password; also lifts a lockout and signs the user out everywhere."""
        password_hash = await self._hash(password)
        async with self.db.session() as s:
            user = await _user(s, username, lock=True)
            user.password_hash = password_hash
            user.password_changed_ms = now_ms()
            user.failed_logins = 0
            user.locked_until_ms = None
            await _revoke_all(s, user.id)
            await s.commit()
            info = UserInfo.of(user)
        await append_audit(
            self.db,
            actor=actor,
            action="users.reset_password",
            target=f"user:{username}",
            result="changed",
        )
        return info

    async def set_active(self, *, actor: str, username: str, active: bool) -> UserInfo:
        """Disable (signing the user out everywhere) or enable an account."""
        async with self.db.session() as s:
            user = await _user(s, username, lock=True)
            if not active and user.active and user.role == Role.ADMIN:
                await _keep_an_admin(s, user)
            user.active = active
            if not active:
                await _revoke_all(s, user.id)
            await s.commit()
            info = UserInfo.of(user)
        await append_audit(
            self.db,
            actor=actor,
            action="users.enable" if active else "users.disable",
            target=f"user:{username}",
            result="enabled" if active else "disabled",
        )
        return info

    async def _hash(self, password: str) -> str:
        try:
            check_password_rules(password)
        except ValueError as exc:
            raise BadPassword(str(exc)) from exc
        return await asyncio.to_thread(self.hashing.hash, password)


async def _find(s: AsyncSession, username: str, *, lock: bool = False) -> User | None:
    query = select(User).where(User.username == username)
    if lock:
        # Row lock on PostgreSQL (SQLite serialises writers anyway), so two admins changing
        # the last two admins at once cannot both pass the last-admin check.
        query = query.with_for_update()
    return (await s.execute(query)).scalar_one_or_none()


async def _user(s: AsyncSession, username: str, *, lock: bool = False) -> User:
    user = await _find(s, username, lock=lock)
    if user is None:
        raise UserNotFound(f"no user {username!r}")
    return user


async def _keep_an_admin(s: AsyncSession, leaving: User) -> None:
    others = select(User.id).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != leaving.id
    )
    if (await s.execute(others.with_for_update())).first() is None:
        raise LastAdmin(f"{leaving.username!r} is the last active admin; make another admin first")


async def _revoke_all(s: AsyncSession, user_id: int) -> None:
    await s.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
        .values(revoked=True)
    )
