"""Simulated shelter devices and siren posts that speak Modbus TCP, for demos and tests."""

from firmware_sim.control import DEFAULT_CONTROL_PORT, FaultClient, FaultRefused, FaultServer
from firmware_sim.device import SimBank, SimDevice
from firmware_sim.fleet import SHELTER_DEVICES, Fleet, FleetSpec, run_fleet
from firmware_sim.physics import Physics, ShelterPhysics
from firmware_sim.registers import RegisterImage
from firmware_sim.scenarios import SCENARIOS, ActiveFault, Scenario, ScenarioError
from firmware_sim.sirens import SirenPhysics, SirenPost, SirenRelayPhysics

__all__ = [
    "DEFAULT_CONTROL_PORT",
    "SCENARIOS",
    "SHELTER_DEVICES",
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
    "SimBank",
    "SimDevice",
    "SirenPhysics",
    "SirenPost",
    "SirenRelayPhysics",
    "run_fleet",
]
