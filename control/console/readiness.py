"""A site's readiness as the fleet view shows it, derived only from what the platform knows.
The logic lives in control/maintenance/readiness.py, next to the score; this module names
it for the console. Pure logic, no IO.

The worst finding wins:

- ``no_data``: the store holds no readings of the site (a siren post names it, nothing
  reported yet);
- ``not_ready``: an open critical alert;
- ``degraded``: an open major alert, a device the alert engine declares offline or silent,
  or a siren post whose last test failed (or that is disabled);
- ``attention``: open minor or warning alerts only;
- ``ready``: none of these.

Two more findings come from maintenance (control/maintenance): an overdue item and a
missing, stale or late conversion drill make a site ``attention``.

Next to the state, a score out of 100 with every point lost explained
(control/maintenance/readiness.py): the state is the worse of the worst finding and the
score's band. Readiness says nothing the alert engine, the siren tests, the maintenance
programme and the drills have not said: it is their verdicts summed up per site.
"""

from __future__ import annotations

from control.maintenance.readiness import (
    READINESS,
    AlertFact,
    Cause,
    DrillFact,
    OverdueFact,
    Readiness,
    SiteFacts,
    SiteReadiness,
    assess,
)

__all__ = [
    "READINESS",
    "AlertFact",
    "Cause",
    "DrillFact",
    "OverdueFact",
    "Readiness",
    "SiteFacts",
    "SiteReadiness",
    "assess",
]
