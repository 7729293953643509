"""Errors shared by every Shelterwatch package.

    ShelterwatchError
    ├── ConfigError          bad configuration; the message names the file and the key
    ├── ContractError        a topic or payload outside the MQTT contract
    ├── CodecError           a value a register type cannot hold, or words that do not decode
    └── TransportError       a link to a device, broker or store failed
        ├── ConnectError     could not connect, or the connection dropped
        ├── DeviceTimeout    a device did not answer in time
        ├── PublishRefused   the broker refused a publish (no permission, too large)
        └── StoreError       the time-series store refused or failed a request
            └── StoreRejected   the store answered 4xx: retrying will not help

Library errors are converted at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "ConfigError",
    "ConnectError",
    "ContractError",
    "DeviceTimeout",
    "PublishRefused",
    "ShelterwatchError",
    "StoreError",
    "StoreRejected",
    "TransportError",
]


class ShelterwatchError(Exception):
    """Base of every error Shelterwatch raises on purpose."""


class ConfigError(ShelterwatchError):
    pass


class ContractError(ShelterwatchError):
    pass


class CodecError(ShelterwatchError):
    pass


class TransportError(ShelterwatchError):
    pass


class ConnectError(TransportError):
    pass


class DeviceTimeout(TransportError):
    pass


class PublishRefused(TransportError):
    pass


class StoreError(TransportError):
    pass


class StoreRejected(StoreError):
    pass
