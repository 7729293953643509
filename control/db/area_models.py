"""The command area tree, stored whole: one row per imported revision.

A tree is read and replaced as one document (canonical JSON), so every replica and every
request sees one revision or the next, never a mix; the newest row is the tree in force and
the older rows are its history. ``users.area`` names the area each person belongs to.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control.db.models import Base

__all__ = ["AreaTreeRecord"]


class AreaTreeRecord(Base):
    __tablename__ = "area_trees"

    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # [{"code", "name", "level", "parent", "gateways"}, ...], parents before children.
    body: Mapped[str] = mapped_column(Text)
    # SHA-256 of body: the audit row of the import carries it.
    digest: Mapped[str] = mapped_column(String(64))
    areas: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(128))
    imported_ms: Mapped[int] = mapped_column(BigInteger)
