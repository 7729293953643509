"""Simulated shelter devices and siren posts that speak Modbus TCP, for demos and tests."""

from firmware_sim.control import DEFAULT_CONTROL_PORT, FaultClient, FaultRefused, FaultServer
from firmware_sim.device import SimDevice
from firmware_sim.fleet import SHELTER_DEVICES, Fleet, FleetSpec, run_fleet
from firmware_sim.physics import (
    SIGNAL_DURATION_S,
    Physics,
    ShelterPhysics,
    SirenPhysics,
)
from firmware_sim.registers import RegisterImage
from firmware_sim.scenarios import SCENARIOS, ActiveFault, Scenario, ScenarioError

__all__ = [
    "DEFAULT_CONTROL_PORT",
    "SCENARIOS",
    "SHELTER_DEVICES",
    "SIGNAL_DURATION_S",
    "ActiveFault",
    "FaultClient",
    "FaultRefused",
    "FaultServer",
    "Fleet",
    "FleetSpec",
    "Physics",
    "RegisterImage",
    "Scenario",
    "ScenarioError",
    "ShelterPhysics",
    "SimDevice",
    "SirenPhysics",
    "run_fleet",
]
