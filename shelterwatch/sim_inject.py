"""Exercise injects for the simulator: the one message that crosses from control to firmware_sim.

During an exercise the director injects situations (a siren that does not answer, a door that
jams ...). Their physical side is a fault in the simulated devices, so the control service
publishes the inject on ``{p}/sim/inject`` and the simulator, the only subscriber, switches
the named fault on (or off, ``action: repair``). Neither side imports the other; this model is
all they share. It is not part of the gateway contract: no gateway, collector or third-party
device reads or writes this topic, and a production broker should not let anyone but the
control service publish on it (docs/contract.md, "Simulator only").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from shelterwatch.contract import DEFAULT_PREFIX, SLUG_PATTERN

__all__ = ["SimInject", "sim_inject_topic"]

_Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
_Option = StrictBool | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr


def sim_inject_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/sim/inject"


class SimInject(BaseModel):
    """Switch a simulator fault on (``inject``) or off (``repair``) at a site.

    ``id`` is the situation's id: the simulator applies each (id, action) once, so a QoS 1
    re-delivery changes nothing. ``site`` and ``device`` are the platform's names; ``scenario``
    and ``options`` name a fault of ``firmware_sim.scenarios.SCENARIOS``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    exercise: _Slug
    action: Literal["inject", "repair"]
    site: _Slug
    device: _Slug | None = None
    scenario: _Slug
    options: Annotated[dict[_Slug, _Option], Field(max_length=16)] = Field(default_factory=dict)
    ts: Annotated[int, Field(ge=0)]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
