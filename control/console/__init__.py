"""The built-in console: server-rendered pages for duty officers, in zh-CN and English.

Mounted by the control service at ``/console`` (see app.py); docs/dashboards.md, "Console",
shows each page.
"""

from __future__ import annotations

from control.console.app import MOUNT, create_console

__all__ = ["MOUNT", "create_console"]
