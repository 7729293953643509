"""How the gateway drives sirens: confirmation polling, supervision and thresholds."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SirenSettings"]


class SirenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A start or stop is confirmed by reading the device's feedback this often, up to
    # confirm_timeout_s, instead of waiting for the next regular poll.
    confirm_poll_s: Annotated[float, Field(gt=0, le=5)] = 0.05
    confirm_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    # A signal the controller times itself is checked this often while it plays.
    supervise_poll_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    # A controller-timed signal may end this much before its nominal end and still count.
    end_tolerance_s: Annotated[float, Field(ge=0, le=30)] = 1.0
    # A siren that does not answer is retried this long (within the command's expiry)
    # before it is reported unreachable.
    unreachable_after_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    # How long a controller's silent self-test may take.
    silent_test_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # Relay sirens: at least this current means the siren sounds; at most idle_current_a
    # may flow with the relay off (more means a stuck relay or a leaking driver).
    relay_sound_current_a: Annotated[float, Field(gt=0, le=1000)] = 2.0
    relay_idle_current_a: Annotated[float, Field(gt=0, le=1000)] = 0.5
    # Relay sirens' silent test fails below this battery voltage.
    battery_min_v: Annotated[float, Field(ge=0, le=1000)] = 24.0
    # How long a cancel waits for every siren of the activation to confirm its stop.
    cancel_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
