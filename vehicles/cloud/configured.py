"""The vehicle cloud this deployment talks to, chosen by settings.

Apart from the interface (vehicles.cloud.provider) so that the interface imports no
implementation: every implementation imports the interface, and only this module knows them all.
"""

from __future__ import annotations

from vehicles.cloud.provider import VehicleCloud
from vehicles.cloud.smartcar import SmartcarClient


def get_provider() -> VehicleCloud:
    """The configured vehicle cloud (Smartcar or the simulator, by settings)."""
    return SmartcarClient.from_settings()
