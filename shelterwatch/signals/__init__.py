"""Siren signals as data: the built-in catalogue and the loader for regional ones.

A signal is a list of (on, off) segments played ``repeat`` times, with a tone and a name in
Chinese and English. The national signals of China are built in; patterns that differ by
city (灾情警报) or by country are configuration: a YAML file of the same shape whose entries
add to the built-in ones or replace them by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shelterwatch.config import load_yaml_model
from shelterwatch.contract import SLUG_PATTERN, SignalSegment, SignalSpec

__all__ = ["BUILTIN_FILE", "Catalogue", "SignalDefinition", "builtin_signals", "load_signals"]

BUILTIN_FILE = Path(__file__).parent / "builtin.yaml"


class SignalDefinition(BaseModel):
    """One signal of the catalogue: what the wire carries, plus its names for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=SLUG_PATTERN)]
    title_zh: Annotated[str, Field(min_length=1, max_length=64)]
    title_en: Annotated[str, Field(min_length=1, max_length=64)]
    segments: Annotated[list[SignalSegment], Field(min_length=1, max_length=64)]
    repeat: Annotated[int, Field(ge=1, le=100)] = 1
    tone: Annotated[str, Field(max_length=32)] = "steady"
    # The signal's number on controllers with built-in signals; None: the gateway times it.
    number: Annotated[int, Field(ge=1, le=65535)] | None = None
    description: str = ""

    def spec(self) -> SignalSpec:
        return SignalSpec(
            name=self.name,
            segments=list(self.segments),
            repeat=self.repeat,
            tone=self.tone,
            number=self.number,
        )

    @property
    def duration_s(self) -> float:
        return self.spec().duration_s


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signals: list[SignalDefinition]


def _merge(*groups: Iterable[SignalDefinition]) -> dict[str, SignalDefinition]:
    merged: dict[str, SignalDefinition] = {}
    for group in groups:
        for signal in group:
            merged[signal.name] = signal
    return merged


@cache
def builtin_signals() -> dict[str, SignalDefinition]:
    return _merge(load_yaml_model(Catalogue, BUILTIN_FILE, what="signal catalogue").signals)


def load_signals(path: Path | None = None) -> dict[str, SignalDefinition]:
    """The built-in signals, with those of ``path`` added or replacing them by name."""
    if path is None:
        return dict(builtin_signals())
    extra = load_yaml_model(Catalogue, path, what="signal catalogue")
    return _merge(builtin_signals().values(), extra.signals)
