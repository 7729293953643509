"""Errors of the gateway, on top of the core's tree (``shelterwatch.errors``).

ShelterwatchError
└── TransportError
    └── DeviceTimeout
        └── DeviceRefused   the device answered with a Modbus exception
"""

from __future__ import annotations

from shelterwatch.errors import DeviceTimeout

__all__ = ["DeviceRefused"]


class DeviceRefused(DeviceTimeout):
    """The device answered, with a Modbus exception: it is there, but will not do it.

    A subclass of DeviceTimeout so that pollers treat it as before (the poll failed); the
    siren runner tells it apart from silence (``failed``, not ``unreachable``).
    """
