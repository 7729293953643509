"""Simulated shelter devices and siren posts that speak Modbus TCP, for demos and tests."""

from firmware_sim.device import SimDevice
from firmware_sim.fleet import SHELTER_DEVICES, Fleet, FleetSpec, run_fleet
from firmware_sim.physics import (
    SIGNAL_DURATION_S,
    Physics,
    ShelterPhysics,
    SirenPhysics,
)
from firmware_sim.registers import RegisterImage

__all__ = [
    "SHELTER_DEVICES",
    "SIGNAL_DURATION_S",
    "Fleet",
    "FleetSpec",
    "Physics",
    "RegisterImage",
    "ShelterPhysics",
    "SimDevice",
    "SirenPhysics",
    "run_fleet",
]
