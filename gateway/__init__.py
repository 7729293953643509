"""The gateway: polls Modbus devices and publishes the MQTT contract."""

from gateway.service import Gateway, GatewayStats
from gateway.settings import DeviceConfig, GatewaySettings, TcpTransport

__all__ = ["DeviceConfig", "Gateway", "GatewaySettings", "GatewayStats", "TcpTransport"]
