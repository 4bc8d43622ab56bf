"""``python -m tests.simulator --host 127.0.0.1 --port 8765 [--clock 1]``."""

from __future__ import annotations

import argparse
import signal
import threading

from .server import SimulatorServer


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description="WhatsApp Web simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clock", type=float, default=1.0, help="clock speed-up factor")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SimulatorServer(args.host, args.port, clock_scale=args.clock) as server:
        print(f"WhatsApp Web simulator on {server.url} (control: {server.url}_sim/state)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
