"""Process-wide lifecycle state: set by a signal, read by /readyz."""

from __future__ import annotations

import threading

# Set on the first SIGTERM (serving.py): /readyz answers 503 so the load balancer takes this replica
# out of rotation while it still serves what it is sent. A process never leaves this state.
DRAINING = threading.Event()
