"""A small command area tree for tests, and users placed in it.

    zj  浙江省 (province)
    ├── hz  杭州市 (city)
    │   ├── hz-xihu  西湖区 (county): site-x1 (gw-x1), site-x2 (gw-x2)
    │   └── hz-binj  滨江区 (county): site-b1 (gw-b1)
    └── nb  宁波市 (city)
        └── nb-hais  海曙区 (county): site-n1 (gw-n1)

A user placed in an area is named ``{role}@{area}`` in the docs and ``{role}.{area}`` as a
username (usernames allow no '@'); their password is ``PASSWORDS[role]``.
"""

from __future__ import annotations

from collections.abc import Iterable

from control_helpers import PASSWORDS

from control import ControlSettings
from control.areas import AreaStore, AreaTree, parse_areas
from control.auth import Accounts, Role, hashing_for
from control.db import Database

__all__ = [
    "AREAS_YAML",
    "COUNTY_SITES",
    "area_user",
    "create_area_users",
    "import_areas",
    "sample_tree",
]

AREAS_YAML = """\
areas:
  - code: zj
    name: 浙江省
    level: province
    children:
      - code: hz
        name: 杭州市
        level: city
        children:
          - code: hz-xihu
            name: 西湖区
            level: county
            children:
              - {code: site-x1, name: 西湖一号工程, level: site, gateways: [gw-x1]}
              - {code: site-x2, name: 西湖二号工程, level: site, gateways: [gw-x2]}
          - code: hz-binj
            name: 滨江区
            level: county
            children:
              - {code: site-b1, name: 滨江一号工程, level: site, gateways: [gw-b1]}
      - code: nb
        name: 宁波市
        level: city
        children:
          - code: nb-hais
            name: 海曙区
            level: county
            children:
              - {code: site-n1, name: 海曙一号工程, level: site, gateways: [gw-n1]}
"""

COUNTY_SITES: dict[str, tuple[str, ...]] = {
    "hz-xihu": ("site-x1", "site-x2"),
    "hz-binj": ("site-b1",),
    "nb-hais": ("site-n1",),
}


def sample_tree() -> AreaTree:
    return parse_areas(AREAS_YAML, fmt="yaml")


def area_user(role: Role, area: str) -> str:
    return f"{role.value}.{area}"


async def import_areas(settings: ControlSettings, text: str = AREAS_YAML) -> AreaTree:
    async with Database(settings.database_url) as db:
        await db.upgrade()
        return await AreaStore(db).replace(parse_areas(text, fmt="yaml"), actor="test")


async def create_area_users(settings: ControlSettings, placed: Iterable[tuple[Role, str]]) -> None:
    """One user per (role, area), named by ``area_user``."""
    async with Database(settings.database_url) as db:
        await db.upgrade()
        accounts = Accounts(db, hashing_for(settings))
        for role, area in placed:
            await accounts.create(
                actor="test",
                username=area_user(role, area),
                password=PASSWORDS[role],
                role=role,
                area=area,
            )
