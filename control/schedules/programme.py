"""A run's programme in time: when each step starts and how long it takes, and the built-in
templates. Pure: no IO beyond reading the packaged template file once.

A signal step occupies its signal's full cycle, the last silence included (预先警报: (36 s on +
24 s off) × 3 = 180 s), because that is how the notices count "3 minutes" and from where they
count the gap to the next signal. A silent test takes no time in the programme: the controller
runs its diagnostic on its own, so space the steps after it with ``gap_s`` if they need room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from control.schedules.spec import MAX_STEPS, Problem, Slug, Step
from shelterwatch.config import load_yaml_model
from shelterwatch.contract import SirenKind
from shelterwatch.signals import SignalDefinition

__all__ = [
    "MAX_PROGRAMME_S",
    "TEMPLATES_FILE",
    "Template",
    "TimedStep",
    "builtin_templates",
    "signal_length_s",
    "time_programme",
]

TEMPLATES_FILE = Path(__file__).parent / "templates.yaml"
MAX_PROGRAMME_S = 86400.0
_SOUNDING = (SirenKind.AUDIBLE_TEST, SirenKind.DRILL)


@dataclass(frozen=True)
class TimedStep:
    number: int  # 1-based, as the run reports name it
    kind: SirenKind
    signal: str | None
    title: str  # for people: the signal's names, or "silent test"
    offset_s: float  # from the run's start
    length_s: float  # the time the step occupies (the signal's full cycle)
    sounding_s: float  # from the first sound to the end of the last (0 when silent)

    @property
    def end_s(self) -> float:
        return self.offset_s + self.length_s


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    rule: str
    programme: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]


class _TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    templates: list[Template]


@cache
def builtin_templates() -> dict[str, Template]:
    loaded = load_yaml_model(_TemplateFile, TEMPLATES_FILE, what="schedule templates")
    return {t.name: t for t in loaded.templates}


def signal_length_s(signal: SignalDefinition) -> float:
    """The time a signal occupies: its full cycle, the last silence included."""
    return sum(s.on_s + s.off_s for s in signal.segments) * signal.repeat


def time_programme(
    steps: Sequence[Step], signals: Mapping[str, SignalDefinition]
) -> tuple[list[TimedStep], list[Problem]]:
    """Each step's start and length, or every problem with the programme."""
    if not steps:
        return [], [
            Problem(loc=["programme"], msg="no steps: add steps, or name a template instead")
        ]
    timed: list[TimedStep] = []
    problems: list[Problem] = []
    previous_end = 0.0
    for index, step in enumerate(steps):
        loc: list[str | int] = ["programme", index]
        before = len(problems)
        problems += _step_problems(step, loc, signals)
        definition = signals.get(step.signal) if step.signal else None
        length = signal_length_s(definition) if definition else 0.0
        sounding = definition.duration_s if definition else 0.0
        if step.at_s is not None and step.gap_s is not None:
            problems.append(Problem(loc=loc, msg="give at_s or gap_s, not both"))
        if step.at_s is not None:
            offset = step.at_s
            if offset < previous_end:
                problems.append(
                    Problem(
                        loc=[*loc, "at_s"],
                        msg=(
                            f"starts at +{offset:g} s while step {index} is still running until "
                            f"+{previous_end:g} s: use at_s >= {previous_end:g}, or gap_s"
                        ),
                    )
                )
        else:
            offset = previous_end + (step.gap_s or 0.0)
        if len(problems) > before:
            continue
        title = definition.title_zh + " " + definition.title_en if definition else "silent test"
        timed.append(
            TimedStep(
                number=index + 1,
                kind=step.kind,
                signal=step.signal,
                title=title,
                offset_s=offset,
                length_s=length,
                sounding_s=sounding,
            )
        )
        previous_end = offset + length
    if timed and timed[-1].end_s > MAX_PROGRAMME_S:
        problems.append(
            Problem(
                loc=["programme"],
                msg=f"the programme lasts {timed[-1].end_s:g} s; keep one run within a day",
            )
        )
    return timed, problems


def _step_problems(
    step: Step, loc: list[str | int], signals: Mapping[str, SignalDefinition]
) -> list[Problem]:
    if step.kind is SirenKind.LIVE:
        return [
            Problem(
                loc=[*loc, "kind"],
                msg=(
                    "a live alert is never scheduled: it needs a duty officer's request and a "
                    "commander's approval at the time (POST /api/v1/activations); use "
                    "audible_test or drill for a programme"
                ),
            )
        ]
    if step.kind is SirenKind.SILENT_TEST and step.signal is not None:
        return [Problem(loc=[*loc, "signal"], msg="a silent test makes no sound: leave signal out")]
    if step.kind in _SOUNDING and step.signal is None:
        return [
            Problem(
                loc=[*loc, "signal"],
                msg=(
                    f"a {step.kind.value} sounds a signal: name one of "
                    f"{', '.join(sorted(signals))} (GET /api/v1/signals)"
                ),
            )
        ]
    if step.signal is not None and step.signal not in signals:
        return [
            Problem(
                loc=[*loc, "signal"],
                msg=f"unknown signal {step.signal!r}: known are {', '.join(sorted(signals))}",
            )
        ]
    return []
