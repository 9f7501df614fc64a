"""Fault injection: what a sandbox does wrong on purpose, on its API paths only.

A fault is armed with ``POST /_sandbox/faults``::

    {"method": "POST", "path_prefix": "/v1/accounts", "mode": "drop", "count": 1}

| field | default | meaning |
|---|---|---|
| method | ``*`` | GET, POST, PUT, DELETE or ``*`` |
| path_prefix | the sandbox's API prefix | must start with it |
| mode | required | see below |
| status | 503 (500 for ``commit_then_error``) | the error answer's status, 400 to 599 |
| retry_after | none | seconds, sent as ``Retry-After`` |
| latency_ms | 500 (30000 for ``timeout`` and ``hold``) | how long to wait |
| count | 1 | how many matching requests it affects; ``null`` = until cleared |

Modes: ``error`` answers `status` without doing the work; ``latency`` waits, then
serves; ``timeout`` the same, meant to outlast the client's read timeout; ``drop`` does
the work (commits), then closes the connection without an answer; ``commit_then_error``
does the work, then answers `status`; ``hold`` does the work, then holds the answer for
latency_ms (the window in which a client can die after the write).

A sandbox may offer a subset of the modes (`FaultBook(modes=...)`).
"""

from __future__ import annotations

import secrets
import socket
import threading
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .http import field_errors

MODES = ("error", "latency", "timeout", "drop", "commit_then_error", "hold")
METHODS = ("GET", "POST", "PUT", "DELETE", "*")
SETTINGS = ("method", "path_prefix", "mode", "status", "retry_after", "latency_ms", "count")


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool)
        and value >= low and (high is None or value <= high)
    )


@dataclass
class Fault:
    fault_id: str
    method: str
    path_prefix: str
    mode: str
    status: int
    retry_after: float | None
    latency_ms: int
    remaining: int | None  # None: until cleared

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.path_prefix)

    @property
    def seconds(self) -> float:
        return self.latency_ms / 1000

    def retry_after_header(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}

    def to_json(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "method": self.method,
            "path_prefix": self.path_prefix,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "count": self.remaining,
        }


class FaultBook:
    """The armed faults of one sandbox, behind one lock."""

    def __init__(self, api_prefix: str, modes: tuple[str, ...] = MODES, paths: str = "API"):
        self.api_prefix = api_prefix
        self.paths = paths  # what the sandbox calls its API paths, for the messages
        self.modes = modes
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def parse(self, spec: Any) -> Fault:
        """A fault from its JSON; a 400 `SandboxError` listing every bad field."""
        if not isinstance(spec, dict):
            raise field_errors({"body": "must be a JSON object"}, "fault")
        errors = {name: f"{name} is not a fault setting." for name in set(spec) - set(SETTINGS)}
        method = str(spec.get("method", "*")).upper()
        if method not in METHODS:
            errors["method"] = "Method must be GET, POST, PUT, DELETE or *."
        path_prefix = spec.get("path_prefix", self.api_prefix)
        if not isinstance(path_prefix, str) or not path_prefix.startswith(self.api_prefix):
            errors["path_prefix"] = f"Faults apply to {self.paths} paths only: the prefix must start with {self.api_prefix}."
        mode = spec.get("mode")
        if mode not in self.modes:
            errors["mode"] = "Mode must be one of " + ", ".join(self.modes) + "."
        status = spec.get("status", 500 if mode == "commit_then_error" else 503)
        if not _whole(status, 400, 599):
            errors["status"] = "Status must be an HTTP error status, 400 to 599."
        retry_after = spec.get("retry_after")
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, (int, float, Decimal)) or retry_after < 0):
            errors["retry_after"] = "retry_after must be a number of seconds, 0 or more."
        latency_ms = spec.get("latency_ms", 30000 if mode in ("timeout", "hold") else 500)
        if not _whole(latency_ms, 0, 600_000):
            errors["latency_ms"] = "latency_ms must be a whole number of milliseconds, 0 to 600000."
        count = spec.get("count", 1)
        if count is not None and not _whole(count, 1):
            errors["count"] = "count must be 1 or more (how many matching requests it affects), or null for until cleared."
        if errors:
            raise field_errors(errors, "fault")
        return Fault(
            fault_id="flt_" + secrets.token_hex(6),
            method=method,
            path_prefix=path_prefix,
            mode=mode,
            status=status,
            retry_after=float(retry_after) if retry_after is not None else None,
            latency_ms=latency_ms,
            remaining=count,
        )

    def add(self, spec: Any) -> Fault:
        fault = self.parse(spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, with one of its uses spent."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return replace(fault)
        return None

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
        return count


def drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without an answer (after the work is committed).

    Werkzeug's server hands the socket over as ``werkzeug.socket``; shutdown() (not
    close()) sends FIN, so the client reads EOF where the status line should be and
    `requests` reports a ConnectionError. Raising ConnectionAbortedError tells Werkzeug's
    handler the connection is gone, so it neither writes a response nor logs a traceback.
    """
    sock = environ.get("werkzeug.socket")
    if sock is None:
        raise RuntimeError("the drop fault needs Werkzeug's server (environ['werkzeug.socket'])")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client already went away
    raise ConnectionAbortedError("sandbox fault: drop the connection after committing")
