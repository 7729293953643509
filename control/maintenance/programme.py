"""Maintenance programmes: YAML files of inspection and maintenance items with periods.

Pure of IO beyond reading the file. The built-in programme (``programmes/zhejiang.yaml``)
follows the periods of the Zhejiang standard DBJ33/T1309-2023; a region loads its own with
``maintenance.programme_file``. Errors name the file and the key
(``region.yaml: items[3].period_days: Input should be greater than or equal to 1``).

An item may name an evidence ``detector`` (``evidence.py``): the platform then records it as
done from telemetry. Every item can also be confirmed by a person with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from control.maintenance.errors import ProgrammeError
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["BUILTIN", "Detector", "Evidence", "Item", "Programme", "load_programme"]

BUILTIN = Path(__file__).resolve().parent / "programmes" / "zhejiang.yaml"
Detector = Literal["door_cycle", "fan_run", "generator_start"]
_TITLE = Annotated[str, Field(min_length=1, max_length=200)]


class Evidence(BaseModel):
    """Which telemetry proves the item done (the detectors of ``evidence.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Detector
    # fan_run: the shortest run that counts (Zhejiang 6.1.7: run ≥ 1 h).
    min_run_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Field(pattern=SLUG_PATTERN)]
    # The equipment type (door, ventilation, power, water, environment, siren, civil, ...).
    equipment: Annotated[str, Field(pattern=SLUG_PATTERN)]
    title_zh: _TITLE
    title_en: _TITLE
    period_days: Annotated[int, Field(ge=1, le=3660)]
    # Readiness points an overdue item costs (control/maintenance/readiness.py).
    weight: Annotated[int, Field(ge=0, le=50)] = 3
    clause: Annotated[str, Field(max_length=300)] = ""
    evidence: Evidence | None = None
    # Degradation alert rules (collector/alerts) whose work orders are about this item:
    # closing such a work order as done records the item done.
    alert_rules: list[Annotated[str, Field(pattern=SLUG_PATTERN)]] = Field(default_factory=list)


class Programme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=SLUG_PATTERN)]
    title: _TITLE
    source: Annotated[str, Field(max_length=500)] = ""
    # An item is "due" this many days before its due date.
    lead_days: Annotated[int, Field(ge=0, le=90)] = 7
    items: Annotated[list[Item], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_keys(self) -> Self:
        seen: set[str] = set()
        for i, item in enumerate(self.items):
            if item.key in seen:
                raise ValueError(f"items[{i}].key: {item.key!r} appears twice")
            seen.add(item.key)
        return self

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    def item_for_rule(self, rule: str) -> Item | None:
        return next((i for i in self.items if rule in i.alert_rules), None)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def load_programme(path: Path | None = None) -> Programme:
    """The programme in ``path``, or the built-in one; a bad file raises ProgrammeError."""
    path = path or BUILTIN
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProgrammeError(f"{path}: cannot read the maintenance programme: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProgrammeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProgrammeError(f"{path}: a programme is a mapping with name, title and items")
    try:
        return Programme.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _where(tuple(first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ProgrammeError(
            f"{path.name}: {key}: {message}" if key else f"{path.name}: {message}"
        ) from exc
