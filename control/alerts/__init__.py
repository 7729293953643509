"""Alerts in the control service: recording the alert engine's events, people's
acknowledgements, and signed webhook notifications (docs/alerts.md)."""

from control.alerts.errors import AlertAlreadyAcknowledged, AlertNotFound, AlertsUnavailable
from control.alerts.records import alert_public
from control.alerts.service import AlertService

__all__ = [
    "AlertAlreadyAcknowledged",
    "AlertNotFound",
    "AlertService",
    "AlertsUnavailable",
    "alert_public",
]
