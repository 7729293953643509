"""User accounts: list, create, change role or area, reset password, disable and enable.

Admins only, and each within their own area: an admin of a county manages the people of that
county and of the areas under it, and places them only there. People with no area (they act
everywhere) are managed by admins who act everywhere too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    AccountsDep,
    Allow,
    ErrorDetail,
    ScopeDep,
    invalid_body,
)
from control.areas import CODE_PATTERN, Scope
from control.auth import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    USERNAME_PATTERN,
    AuthError,
    BadPassword,
    BadUsername,
    LastAdmin,
    Permission,
    Principal,
    Role,
    UserExists,
    UserInfo,
    UserNotFound,
)

__all__ = ["UserPublic", "router"]

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Admin = Annotated[Principal, Allow(Permission.USERS_MANAGE)]
Username = Annotated[str, Path(pattern=USERNAME_PATTERN, max_length=64)]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such user", "model": ErrorDetail}
}
_LAST_ADMIN: dict[int | str, dict[str, Any]] = {
    409: {"description": "It would leave no active admin", "model": ErrorDetail}
}


class UserPublic(BaseModel):
    username: str
    full_name: str
    role: Role
    active: bool
    failed_logins: int
    locked_until_ms: int | None
    created_ms: int
    password_changed_ms: int
    # The command area the user acts in; None: every area.
    area: str | None

    @classmethod
    def of(cls, info: UserInfo) -> UserPublic:
        return cls(**info.__dict__)


class UserCreate(BaseModel):
    username: Annotated[str, Field(pattern=USERNAME_PATTERN, max_length=64)]
    # No NUL: PostgreSQL text cannot hold it.
    full_name: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] = ""
    role: Role
    password: Password
    # The command area the user will act in; left out: the creating admin's own area.
    area: Annotated[str | None, Field(pattern=CODE_PATTERN, max_length=64)] = None


class AreaChange(BaseModel):
    # None: every area (only an admin who acts everywhere may grant that).
    area: Annotated[str | None, Field(pattern=CODE_PATTERN, max_length=64)]


class RoleChange(BaseModel):
    role: Role


class PasswordReset(BaseModel):
    password: Password


def _http_error(exc: AuthError) -> HTTPException:
    code = {
        UserNotFound: status.HTTP_404_NOT_FOUND,
        UserExists: status.HTTP_409_CONFLICT,
        LastAdmin: status.HTTP_409_CONFLICT,
        # The request models already enforce these; the service checks again for the CLI.
        BadUsername: status.HTTP_422_UNPROCESSABLE_CONTENT,
        BadPassword: status.HTTP_422_UNPROCESSABLE_CONTENT,
    }.get(type(exc), status.HTTP_400_BAD_REQUEST)
    return HTTPException(code, str(exc))


def _manages(scope: Scope, area: str | None) -> bool:
    """Whether an admin of ``scope`` may manage a person of ``area``."""
    if scope.unlimited:
        return True
    return area is not None and scope.has_area(area)


async def _in_reach(accounts: AccountsDep, scope: Scope, username: str) -> None:
    """A user outside the admin's area answers as unknown: nothing leaks about them."""
    try:
        info = await accounts.get(username)
    except UserNotFound as exc:
        raise _http_error(exc) from exc
    if not _manages(scope, info.area):
        raise _http_error(UserNotFound(f"no user {username!r}"))


def _placeable(scope: Scope, area: str | None) -> str | None:
    """Check an area an admin gives someone: it must exist and lie within their own."""
    if area is None:
        if scope.unlimited:
            return None
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "only an admin who acts in every area may give a user every area",
        )
    if area not in scope.tree.areas or not scope.has_area(area):
        raise invalid_body(
            "area", f"no area {area!r} in your part of the tree (GET /api/v1/areas lists it)"
        )
    return area


@router.get("")
async def list_users(admin: Admin, accounts: AccountsDep, scope: ScopeDep) -> list[UserPublic]:
    return [UserPublic.of(u) for u in await accounts.list() if _manages(scope, u.area)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=BAD_JSON | {409: {"description": "The username is taken", "model": ErrorDetail}},
)
async def create_user(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, body: UserCreate
) -> UserPublic:
    area = _placeable(scope, body.area if body.area is not None else scope.area)
    try:
        info = await accounts.create(
            actor=admin.username,
            username=body.username,
            password=body.password,
            role=body.role,
            full_name=body.full_name,
            area=area,
        )
    except AuthError as exc:
        raise _http_error(exc) from exc
    return UserPublic.of(info)


@router.put("/{username}/role", responses=BAD_JSON | _NOT_FOUND | _LAST_ADMIN)
async def set_role(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, username: Username, body: RoleChange
) -> UserPublic:
    await _in_reach(accounts, scope, username)
    try:
        info = await accounts.set_role(actor=admin.username, username=username, role=body.role)
    except AuthError as exc:
        raise _http_error(exc) from exc
    return UserPublic.of(info)


@router.put(
    "/{username}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=BAD_JSON | _NOT_FOUND,
)
async def reset_password(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, username: Username, body: PasswordReset
) -> None:
    """Set a new password, lift any lockout, and end every session of the user."""
    await _in_reach(accounts, scope, username)
    try:
        await accounts.reset_password(
            actor=admin.username, username=username, password=body.password
        )
    except AuthError as exc:
        raise _http_error(exc) from exc


@router.post("/{username}/disable", responses=_NOT_FOUND | _LAST_ADMIN)
async def disable_user(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, username: Username
) -> UserPublic:
    """Refuse the user's logins and end every session of theirs."""
    await _in_reach(accounts, scope, username)
    try:
        info = await accounts.set_active(actor=admin.username, username=username, active=False)
    except AuthError as exc:
        raise _http_error(exc) from exc
    return UserPublic.of(info)


@router.post("/{username}/enable", responses=_NOT_FOUND)
async def enable_user(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, username: Username
) -> UserPublic:
    await _in_reach(accounts, scope, username)
    try:
        info = await accounts.set_active(actor=admin.username, username=username, active=True)
    except AuthError as exc:
        raise _http_error(exc) from exc
    return UserPublic.of(info)


@router.put("/{username}/area", responses=BAD_JSON | _NOT_FOUND)
async def set_area(
    admin: Admin, accounts: AccountsDep, scope: ScopeDep, username: Username, body: AreaChange
) -> UserPublic:
    """Move a user to another command area; it applies to their next request."""
    await _in_reach(accounts, scope, username)
    area = _placeable(scope, body.area)
    try:
        info = await accounts.set_area(actor=admin.username, username=username, area=area)
    except AuthError as exc:
        raise _http_error(exc) from exc
    return UserPublic.of(info)
