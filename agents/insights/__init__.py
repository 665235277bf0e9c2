"""Read-only views across the platform for the console: cost per artefact and the live monitor."""

from .artefacts import ArtefactCosts
from .monitor import MonitorService
from .routes import insight_routes

__all__ = ["ArtefactCosts", "MonitorService", "insight_routes"]
