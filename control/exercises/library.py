"""The situation library: what a director can inject, and what counts as a response to it.

Loaded from ``library/situations.yaml`` (the comments there explain each field) and checked
when the control service first needs it, so that a broken library fails loudly at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from shelterwatch.contract import SLUG_PATTERN

__all__ = ["FAILURE_SOURCES", "LIBRARY_FILE", "SituationKind", "library"]

LIBRARY_FILE = Path(__file__).resolve().parent / "library" / "situations.yaml"
# Where a failed outcome at a site is read from (control/exercises/timing.py).
FAILURE_SOURCES = ("siren_target", "conversion_step", "command")

_Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
_Action = Annotated[str, Field(pattern=r"^[a-z_]+\.[a-z_]+$")]


class SituationKind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: _Slug
    title_zh: str
    title_en: str
    target: Literal["siren", "site"]
    # The device the fault is on, for a site target (a siren target names its own).
    device: _Slug | None = None
    fault: _Slug
    options: dict[_Slug, StrictBool | StrictFloat | StrictStr] = Field(default_factory=dict)
    alerts: Annotated[list[_Slug], Field(min_length=1)]
    failures: list[Literal["siren_target", "conversion_step", "command"]]
    actions: Annotated[list[_Action], Field(min_length=1)]
    resolved: str


class _Library(BaseModel):
    model_config = ConfigDict(extra="forbid")

    situations: Annotated[list[SituationKind], Field(min_length=1)]


@functools.cache
def library() -> dict[str, SituationKind]:
    """Every situation kind by name, in the file's order."""
    raw = yaml.safe_load(LIBRARY_FILE.read_text(encoding="utf-8"))
    parsed = _Library.model_validate(raw)
    kinds: dict[str, SituationKind] = {}
    for kind in parsed.situations:
        if kind.kind in kinds:
            raise ValueError(f"{LIBRARY_FILE}: situation kind {kind.kind!r} appears twice")
        kinds[kind.kind] = kind
    return kinds
