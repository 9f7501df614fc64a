"""An injectable clock: real time by default, moved forward by tests instead of sleeping.

Every sandbox reads the time through its `Clock` (``app.clock.now()``), never through
`time.time()` directly, so a test can make an hour pass in a request::

    POST /_sandbox/clock {"advance_seconds": 60}        # one minute later, from now on
    POST /_sandbox/clock {"now": "2030-01-01T00:00:00Z"}  # jump to a moment (not backwards)
    POST /_sandbox/clock {"reset": true}                 # real time again
    GET  /_sandbox/clock                                  # {"now": "...", "offset_seconds": 60.0}

The clock keeps running at the real rate after a move (it is real time plus an offset),
so delays, retries and timeouts still elapse by themselves. It never runs backwards
except on reset (``POST /_sandbox/reset`` resets it too): records stamped "now" stay in
time order.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable


class Clock:
    """Real time plus an offset that only grows (until `reset`)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Unix time, sandbox time."""
        return time.time() + self._offset

    def today(self) -> date:
        """The sandbox's local date."""
        return date.fromtimestamp(self.now())

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now(), timezone.utc)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock does not run backwards")
        with self._lock:
            self._offset += seconds
        self._notify()

    def set(self, moment: float) -> None:
        """Jump to unix time `moment`, which must not lie in the sandbox's past."""
        self.advance(max(0.0, moment - self.now()))

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
        self._notify()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every move (e.g. to wake a dispatcher thread)."""
        self._listeners.append(listener)

    def to_json(self) -> dict[str, Any]:
        return {"now": self.utc().isoformat(timespec="microseconds"), "offset_seconds": self._offset}

    def apply(self, body: Any) -> dict[str, str]:
        """Apply a ``POST /_sandbox/clock`` body; field errors, empty when it was applied."""
        if not isinstance(body, dict) or len(body) != 1:
            return {"body": 'send one of {"advance_seconds": 60}, {"now": "<ISO 8601>"}, {"reset": true}'}
        (name, value), = body.items()
        if name == "advance_seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not 0 <= value <= 10 * 365 * 86400:
                return {name: "must be a number of seconds, 0 or more"}
            self.advance(float(value))
        elif name == "now":
            try:
                moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return {name: "must be an ISO 8601 date and time"}
            target = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
            if target < self.now():
                return {name: "must not lie in the sandbox's past (reset first)"}
            self.set(target)
        elif name == "reset" and value is True:
            self.reset()
        else:
            return {name: "is not a clock setting"}
        return {}

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()
