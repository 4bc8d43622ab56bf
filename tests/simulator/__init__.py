"""Local WhatsApp Web simulator: the page a driver sees plus a fake phone control API.

Usage in tests::

    with SimulatorServer() as sim:
        control = SimulatorControl(sim.url)
        ...

Standalone: ``python -m tests.simulator --port 8765 [--clock 10]``.
"""

from .app import create_app
from .control import ControlError, SimulatorControl
from .server import SimulatorServer
from .state import SimState

__all__ = ["ControlError", "SimState", "SimulatorControl", "SimulatorServer", "create_app"]
