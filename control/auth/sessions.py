"""Signing in and out: password checks, lockout, and the bearer tokens that follow.

A login answers the same way, after the same work, whether the username is unknown, the
password is wrong, the account is locked or disabled: the caller learns only "no". The reason
goes to the log and the audit trail, where the people who may read it are.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, or_, select, update

from control.audit import append_audit
from control.auth.accounts import UserInfo, now_ms
from control.auth.passwords import Hashing
from control.auth.roles import Role
from control.auth.tokens import hash_token, new_token
from control.db import ApiToken, Database, User
from control.settings import ControlSettings

__all__ = ["LoginOutcome", "Principal", "Sessions", "hashing_for"]

log = logging.getLogger(__name__)

# Longer than any token new_token() makes; anything longer is refused before hashing.
_MAX_TOKEN_LENGTH = 128

FailReason = Literal["unknown_user", "bad_password", "locked", "disabled"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a valid token."""

    user_id: int
    username: str
    full_name: str
    role: Role
    token_hash: str
    # The command area the user acts in; None: every area (control/areas/scope.py).
    area: str | None = None


@dataclass(frozen=True)
class LoginOutcome:
    user: UserInfo | None = None
    token: str | None = None
    expires_ms: int = 0
    reason: FailReason | None = None


def hashing_for(settings: ControlSettings) -> Hashing:
    p = settings.password_hashing
    return Hashing(time_cost=p.time_cost, memory_kib=p.memory_kib, parallelism=p.parallelism)


class Sessions:
    def __init__(self, db: Database, settings: ControlSettings) -> None:
        self.db = db
        self.settings = settings
        self.hashing = hashing_for(settings)

    async def login(self, username: str, password: str, *, client: str) -> LoginOutcome:
        async with self.db.session() as s:
            user = (
                await s.execute(select(User).where(User.username == username))
            ).scalar_one_or_none()
        # The slow part runs outside any transaction or row lock.
        if user is None:
            await asyncio.to_thread(self.hashing.verify_dummy, password)
            return await self._failed(username, client, "unknown_user")
        verified = await asyncio.to_thread(self.hashing.verify, user.password_hash, password)

        now = now_ms()
        locked_now_until: int | None = None
        async with self.db.session() as s:
            user = (
                await s.execute(select(User).where(User.id == user.id).with_for_update())
            ).scalar_one()
            reason: FailReason | None = None
            if user.locked_until_ms is not None and user.locked_until_ms > now:
                # Even the right password waits out the lock, or the lock would be a hint.
                reason = "locked"
            elif not user.active:
                reason = "disabled"
            elif not verified.ok:
                reason = "bad_password"
                user.failed_logins += 1
                if user.failed_logins >= self.settings.login_max_failures:
                    locked_now_until = now + int(self.settings.lockout_s * 1000)
                    user.locked_until_ms = locked_now_until
                    # A fresh count after the lock, not a one-strike account forever after.
                    user.failed_logins = 0
            if reason is not None:
                await s.commit()
                return await self._failed(username, client, reason, locked_now_until)

            user.failed_logins = 0
            user.locked_until_ms = None
            if verified.rehash is not None:
                # Parameters changed since this hash was made: upgrade it now that we can.
                user.password_hash = verified.rehash
            # Housekeeping on the user's own rows keeps the token table from growing forever.
            await s.execute(
                delete(ApiToken).where(
                    ApiToken.user_id == user.id,
                    or_(ApiToken.revoked.is_(True), ApiToken.expires_ms <= now),
                )
            )
            token, token_hash = new_token()
            expires = now + int(self.settings.token_ttl_s * 1000)
            s.add(
                ApiToken(
                    token_hash=token_hash,
                    user_id=user.id,
                    created_ms=now,
                    expires_ms=expires,
                    revoked=False,
                )
            )
            await s.commit()
            info = UserInfo.of(user)
        log.info("user %r logged in from %s", username, client)
        await append_audit(
            self.db,
            actor=username,
            action="auth.login",
            target=f"user:{username}",
            params={"client": client},
            result="ok",
        )
        return LoginOutcome(user=info, token=token, expires_ms=expires)

    async def _failed(
        self, username: str, client: str, reason: FailReason, locked_until: int | None = None
    ) -> LoginOutcome:
        if locked_until is not None:
            log.warning(
                "user %r locked for %g s after %d failed logins in a row (last from %s)",
                username,
                self.settings.lockout_s,
                self.settings.login_max_failures,
                client,
            )
        else:
            log.info("login refused for %r from %s: %s", username, client, reason)
        params: dict[str, object] = {"client": client, "reason": reason}
        if locked_until is not None:
            params["locked_until_ms"] = locked_until
        await append_audit(
            self.db,
            actor="anonymous",
            action="auth.login_failed",
            target=f"user:{username}",
            params=params,
            result="locked" if locked_until is not None else "refused",
        )
        return LoginOutcome(reason=reason)

    async def resolve(self, token: str) -> Principal | None:
        """The user a token belongs to, or None if it is unknown, expired, revoked or the
        user is disabled. The user's role is read now, so a role change applies at once."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        token_hash = hash_token(token)
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(ApiToken, User)
                    .join(User, ApiToken.user_id == User.id)
                    .where(ApiToken.token_hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        api_token, user = row
        if api_token.revoked or api_token.expires_ms <= now_ms() or not user.active:
            return None
        return Principal(
            user.id, user.username, user.full_name, Role(user.role), token_hash, user.area
        )

    async def logout(self, principal: Principal, *, client: str) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(ApiToken)
                .where(ApiToken.token_hash == principal.token_hash)
                .values(revoked=True)
            )
            await s.commit()
        log.info("user %r logged out from %s", principal.username, client)
        await append_audit(
            self.db,
            actor=principal.username,
            action="auth.logout",
            target=f"user:{principal.username}",
            params={"client": client},
            result="ok",
        )
