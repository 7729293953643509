"""The control service: HTTP API (and, later, the console)."""

from control.app import create_app
from control.settings import ControlSettings

__all__ = ["ControlSettings", "create_app"]
