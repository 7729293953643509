"""The gateway's siren runner: silent tests and signals on siren controllers, from feedback.

Modules, one job each: ``settings`` (SirenSettings), ``timer`` (when a gateway-timed signal
sounds), ``controllers`` (the built-in-signal and relay controllers, recognised by point
names), ``plays`` (silent test, controller-timed and gateway-timed signal), ``ledger`` (which
activation ran on which siren, which were cancelled), ``outcomes`` (ack states and the
summary line), ``runner`` (per-siren state, priority, repeats and cancel).
"""

from gateway.sirens.ledger import ActivationLedger
from gateway.sirens.runner import SirenRunner
from gateway.sirens.settings import SirenSettings

__all__ = ["ActivationLedger", "SirenRunner", "SirenSettings"]
