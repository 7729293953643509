"""Maintenance planning and readiness: programmes as data, due/done/overdue per site and item
with evidence from telemetry, work orders, readiness scores and reports (docs/maintenance.md).
"""

from control.maintenance.errors import (
    Conflict,
    InvalidInput,
    MaintenanceError,
    NotFound,
    ProgrammeError,
    Unavailable,
)
from control.maintenance.programme import Programme, load_programme
from control.maintenance.reports import MaintenanceReport, report_csv, report_html
from control.maintenance.service import MaintenanceService

__all__ = [
    "Conflict",
    "InvalidInput",
    "MaintenanceError",
    "MaintenanceReport",
    "MaintenanceService",
    "NotFound",
    "Programme",
    "ProgrammeError",
    "Unavailable",
    "load_programme",
    "report_csv",
    "report_html",
]
