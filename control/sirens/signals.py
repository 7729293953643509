"""The signal catalogue: the built-in signals plus the configured file (sirens.signals_file).

Signals are data, not code. They are not edited through the API: what sounds to the public
is reviewed configuration, kept in version control next to the rest of the settings, and a
change takes effect when the service restarts. Each activation keeps a copy of the signal it
sent, so a later catalogue change never rewrites what an activation did.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from control.commands import MAX_TTL_S
from control.sirens.errors import NotFound
from shelterwatch.errors import ConfigError
from shelterwatch.signals import SignalDefinition, load_signals

__all__ = ["SignalCatalogue"]


class SignalCatalogue:
    """Every signal by name. Loading checks each fits in one command's lifetime."""

    def __init__(self, path: Path | None = None, *, ttl_margin_s: float = 60.0) -> None:
        try:
            self._signals = load_signals(path)
        except (ConfigError, ValidationError, OSError) as exc:
            raise ConfigError(f"sirens.signals_file {path}: {exc}") from exc
        self.path = path
        limit = MAX_TTL_S - ttl_margin_s
        for signal in self._signals.values():
            if signal.duration_s > limit:
                raise ConfigError(
                    f"signal {signal.name} lasts {signal.duration_s:g} s; a siren command "
                    f"lives at most {MAX_TTL_S:g} s, so a signal may last {limit:g} s "
                    "(shorten it, or lower sirens.ttl_margin_s)"
                )

    def all(self) -> list[SignalDefinition]:
        return sorted(self._signals.values(), key=lambda s: (s.number or 1 << 17, s.name))

    def get(self, name: str) -> SignalDefinition:
        try:
            return self._signals[name]
        except KeyError:
            known = ", ".join(sorted(self._signals))
            raise NotFound(f"no signal {name!r}; the catalogue has {known}") from None
