"""The collector: MQTT telemetry into the time-series store."""

from collector.ingest import Ingest, IngestStats
from collector.service import Collector
from collector.settings import CollectorSettings

__all__ = ["Collector", "CollectorSettings", "Ingest", "IngestStats"]
