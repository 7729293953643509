"""Errors of the alert service that the API turns into answers."""

from __future__ import annotations

__all__ = ["AlertAlreadyAcknowledged", "AlertNotFound", "AlertsUnavailable"]


class AlertNotFound(LookupError):
    pass


class AlertAlreadyAcknowledged(Exception):
    def __init__(self, by: str) -> None:
        super().__init__(f"already acknowledged by {by}")
        self.by = by


class AlertsUnavailable(RuntimeError):
    pass
