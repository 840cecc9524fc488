"""A stop request set from a signal handler, safe to wait on in the main thread.

`threading.Event.set()` must not be called from a signal handler: the handler runs in the main
thread, which may already hold the Event's lock inside `Event.wait()`, and then deadlocks (seen:
a second Ctrl-C hung `pressroom run`). A handler only flips a flag here, and waiting is a short
sleep loop, which a signal interrupts.
"""

from __future__ import annotations

import signal
import time


class StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def install(self, *signals: signal.Signals) -> StopFlag:
        for sig in signals or (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True as soon as a stop was requested."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.2))
        return True
