"""Shelterwatch core: the MQTT contract, device profiles, the register codec, configuration and
the time-series store. No service logic lives here."""

__version__ = "0.1.0"
