"""Conversion plans: YAML files of steps with dependencies, validated and versioned.

Pure of IO beyond reading the files. A plan is either whole (``steps``) or an override of
another (``extends`` plus ``remove`` and ``steps`` that replace or add steps by id), usually
for named ``sites``. The built-in plans are package data (``control/conversions/plans/``); a
region's own go in ``conversions.plans_dir`` and may replace a built-in one by name.

Every plan is checked when the service starts: unique step ids, known dependencies, no
cycle, the fields each kind needs. Errors name the file and the key
(``shelter-01.yaml: steps[2].after: unknown step 'seal'``). Each resolved plan has a content
hash (SHA-256 of its canonical JSON) stored with every order that runs it, next to its
``version``, so a report says exactly which plan was followed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from control.conversions.errors import PlanError
from shelterwatch.contract import SLUG_PATTERN, Value

__all__ = [
    "BUILTIN_DIR",
    "Check",
    "Direction",
    "LoadedPlan",
    "Plan",
    "PlanCatalogue",
    "Step",
    "StepKind",
    "WriteCommand",
    "load_catalogue",
    "plan_hash",
    "topological",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "plans"
Direction = Literal["to_wartime", "to_peacetime"]
StepKind = Literal["automated", "verified", "manual"]
# Step ids name alert rules (conversion-<step>), which are slugs of at most 64 characters.
_STEP_ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
_SLUG = Annotated[str, Field(pattern=SLUG_PATTERN)]
_TITLE = Annotated[str, Field(min_length=1, max_length=200)]


class Check(BaseModel):
    """One condition on a device's latest reading: exactly one of eq, ge, le."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: _SLUG
    point: Annotated[str, Field(min_length=1, max_length=64)]
    eq: Value | None = None
    ge: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        if sum(v is not None for v in (self.eq, self.ge, self.le)) != 1:
            raise ValueError("give exactly one of eq, ge, le")
        return self

    def describe(self) -> str:
        if self.eq is not None:
            return f"{self.device}.{self.point} = {json.dumps(self.eq)}"
        if self.ge is not None:
            return f"{self.device}.{self.point} ≥ {self.ge:g}"
        return f"{self.device}.{self.point} ≤ {self.le:g}"


class WriteCommand(BaseModel):
    """A ``write`` command to one device point (the gateway reads it back)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: _SLUG
    point: Annotated[str, Field(min_length=1, max_length=64)]
    value: Value
    # Read back this point for this value instead (a door commanded "close" reads back idle).
    verify_point: str | None = None
    verify_value: Value | None = None
    verify_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _STEP_ID
    kind: StepKind
    title_zh: _TITLE
    title_en: _TITLE
    after: list[_STEP_ID] = Field(default_factory=list)
    command: WriteCommand | None = None
    check: list[Check] = Field(default_factory=list)
    # Whether the check must keep holding once verified: a contradiction then unverifies the
    # step. False for a stage that a later step moves on from (隔绝 before 滤毒).
    hold: bool = True

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        if self.kind == "automated" and (self.command is None or not self.check):
            raise ValueError("an automated step needs a command and a check")
        if self.kind == "verified" and (self.command is not None or not self.check):
            raise ValueError("a verified step needs a check and no command")
        if self.kind == "manual" and (self.command is not None or self.check):
            raise ValueError("a manual step is confirmed by a person: no command, no check")
        return self


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _SLUG
    version: Annotated[int, Field(ge=1)]
    direction: Direction
    title_zh: _TITLE
    title_en: _TITLE
    # The shelter type it is written for (二等人员掩蔽所 ...), for people; not matched.
    shelter_type: Annotated[str, Field(max_length=100)] = ""
    # The plan of its direction for every site no other plan names.
    default: bool = False
    # The sites it is for; empty: none in particular.
    sites: list[_SLUG] = Field(default_factory=list)
    steps: Annotated[list[Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _graph(self) -> Self:
        ids = [s.id for s in self.steps]
        seen: set[str] = set()
        for i, step_id in enumerate(ids):
            if step_id in seen:
                raise ValueError(f"steps[{i}].id: {step_id!r} appears twice")
            seen.add(step_id)
        for i, step in enumerate(self.steps):
            for dep in step.after:
                if dep not in seen:
                    raise ValueError(f"steps[{i}].after: unknown step {dep!r}")
        topological(self.steps)  # raises on a cycle
        return self


def topological(steps: list[Step]) -> list[Step]:
    """The steps in an order that puts every step after its dependencies, keeping the
    written order where the graph allows. ValueError naming the steps of a cycle."""
    done: set[str] = set()
    out: list[Step] = []
    remaining = list(steps)
    while remaining:
        ready = [s for s in remaining if all(d in done for d in s.after)]
        if not ready:
            cycle = ", ".join(s.id for s in remaining)
            raise ValueError(f"steps: the dependencies form a cycle among {cycle}")
        first = ready[0]
        out.append(first)
        done.add(first.id)
        remaining.remove(first)
    return out


def plan_hash(plan: Plan) -> str:
    canonical = json.dumps(plan.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    plan: Plan
    hash: str
    source: str


class PlanCatalogue:
    """Every plan by name; which one a site runs in a direction."""

    def __init__(self, plans: dict[str, LoadedPlan]) -> None:
        self.plans = plans
        for direction in ("to_wartime", "to_peacetime"):
            defaults = [
                p for p in plans.values() if p.plan.direction == direction and p.plan.default
            ]
            if len(defaults) != 1:
                names = ", ".join(p.plan.name for p in defaults) or "none"
                raise PlanError(
                    f"conversion plans: exactly one plan {direction} must be the default "
                    f"(default: true); found {names}"
                )

    def get(self, name: str) -> LoadedPlan | None:
        return self.plans.get(name)

    def for_site(self, site: str, direction: Direction) -> LoadedPlan:
        """The plan naming the site (an override), else the direction's default."""
        named = [
            p for p in self.plans.values() if p.plan.direction == direction and site in p.plan.sites
        ]
        if named:
            return sorted(named, key=lambda p: p.plan.name)[0]
        return next(
            p for p in self.plans.values() if p.plan.direction == direction and p.plan.default
        )


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"{path.name}: not readable YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise PlanError(f"{path.name}: a plan is a mapping with name, version and steps")
    return doc


def _merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    """An override's steps replace the base's by id or are added; ``remove`` drops some."""
    steps = [dict(s) for s in base.get("steps", [])]
    for removed in override.get("remove", []) or []:
        if not any(s.get("id") == removed for s in steps):
            raise PlanError(f"{where}: remove: {base['name']} has no step {removed!r}")
        steps = [s for s in steps if s.get("id") != removed]
        for s in steps:
            s["after"] = [d for d in s.get("after", []) if d != removed]
    for i, step in enumerate(override.get("steps", []) or []):
        if not isinstance(step, dict) or "id" not in step:
            raise PlanError(f"{where}: steps[{i}]: a step needs an id")
        at = next((n for n, s in enumerate(steps) if s.get("id") == step["id"]), None)
        if at is None:
            steps.append(step)
        else:
            steps[at] = step
    merged = {k: v for k, v in base.items() if k not in ("default", "sites")}
    merged |= {k: v for k, v in override.items() if k not in ("extends", "remove")}
    merged["steps"] = steps
    return merged


def _validated(doc: dict[str, Any], where: str) -> Plan:
    try:
        return Plan.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(
            ".[", "["
        )
        message = str(first["msg"]).removeprefix("Value error, ")
        # Graph errors come from the plan's own validator and name their key themselves.
        raise PlanError(f"{where}: {key}: {message}" if key else f"{where}: {message}") from exc


def load_catalogue(plans_dir: Path | None = None) -> PlanCatalogue:
    """The built-in plans, then those in ``plans_dir`` (which may replace one by name)."""
    docs: dict[str, tuple[dict[str, Any], str]] = {}
    files = sorted(BUILTIN_DIR.glob("*.yaml"))
    if plans_dir is not None:
        if not plans_dir.is_dir():
            raise PlanError(f"conversions.plans_dir {plans_dir} is not a directory")
        files += sorted(plans_dir.glob("*.yaml"))
    for path in files:
        doc = _read(path)
        name = doc.get("name")
        if not isinstance(name, str):
            raise PlanError(f"{path.name}: name: a plan needs a name")
        docs[name] = (doc, path.name)
    loaded: dict[str, LoadedPlan] = {}
    for name, (doc, where) in docs.items():
        seen = [name]
        resolved = doc
        while "extends" in resolved:
            parent = resolved["extends"]
            if parent in seen or parent not in docs:
                why = "extends itself" if parent in seen else "is not a known plan"
                raise PlanError(f"{where}: extends: {parent!r} {why}")
            seen.append(parent)
            resolved = _merge(docs[parent][0], resolved, where)
        plan = _validated(resolved, where)
        loaded[name] = LoadedPlan(plan, plan_hash(plan), where)
    return PlanCatalogue(loaded)
