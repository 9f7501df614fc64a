"""A shared request-rate limit per partner connection.

A partner's limit is per connection, not per Chairside process: Open Dental allows one
request per second per customer key, an on-premises Dentrix connector is a small machine in
a practice's back office, a lender throttles each merchant. So every partner request first
takes a slot from `acquire(key, rate)` (partners.py wires it into the clients, the only
place clients are built), and the slots live in Redis, the broker, where every web and
worker process on every machine draws from the same allowance.

The rule is a sliding window: at most N requests in any window of P seconds, with N and P
from the configured rate (5/s → 5 per second; 0.5/s → 1 per 2 s; 2.5/s → 2 per 0.8 s). An
idle connection therefore lets the few calls of one step go back to back (no added latency
at the chair), and a busy one never sends more than N in any P seconds. A slot is taken
only at the moment of sending (a slot reserved for later would be sent late by a process
that wakes up late, bunching it with the next window's); when the window is full the caller
sleeps until a slot frees and tries again, for at most `max_wait` seconds. Past that it gets
`RateLimited` with `retry_after`, and its step is re-scheduled instead of holding a worker
(services._retry_later, which does not count it as a failed attempt).

Redis keeps one small sorted set per connection (the send times of the last window) and one
Lua script checks and records atomically against Redis's own clock, so the processes'
clocks never matter. Without Redis (the embedded filesystem broker) the same rule runs in
memory, per process: the limit then holds per process, not across them. If Redis fails
mid-run, the process falls back to that in-memory limit and logs it: the limiter may delay
a case, never fail one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import threading
import time
import uuid
from collections import deque

from django.conf import settings

from .ports import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "chairside:rate:"
# Each window is this much longer than the rate says (5/s is paced as 5 per 1.05 s).
GUARD = 0.05

# KEYS[1]: sorted set of send times (µs, Redis clock) on one connection. ARGV: N requests,
# per P µs, a unique member. Takes a slot now and returns 0, or returns the µs until the
# oldest send leaves the window (nothing taken).
_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - period))
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')[2])
  return math.max(1, oldest + period - now)
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000) + 1000)
return 0
"""
# The same check, taking nothing: 0 if a slot is free now, else the µs until one is.
_PEEK = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - period))
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')[2])
  return math.max(1, oldest + period - now)
end
return 0
"""


def connection_key(kind: str, *identity: str) -> str:
    """The limiter key of one partner connection, e.g. ("pms", base URL, API key).

    Hashed, so a credential that identifies the connection never appears in Redis.
    """
    digest = hashlib.sha256("\x1f".join((kind, *identity)).encode()).hexdigest()[:24]
    return f"{KEY_PREFIX}{kind}:{digest}"


def window(rate: float) -> tuple[int, float]:
    """A rate in requests per second as (N requests, per P seconds)."""
    if not rate or rate <= 0:
        raise ValueError("a partner rate limit must be a positive number of requests per second")
    count = max(1, math.floor(rate))
    return count, count / rate


def acquire(key: str, rate: float, *, max_wait: float | None = None) -> float:
    """Take one request slot on connection `key`; return the seconds slept for it.

    Raises RateLimited (nothing reserved, nothing sent) when the next slot is more than
    `max_wait` seconds away (settings.PARTNER_RATE_LIMIT_MAX_WAIT by default).
    """
    count, period = window(rate)
    return acquire_window(key, count, period, max_wait=max_wait, pace=f"{rate:g} per second")


def acquire_window(key: str, count: int, period: float, *, max_wait: float | None = None, pace: str = "") -> float:
    """`acquire` for a limit the partner states as N calls in any P seconds (CareCredit's
    Quickscreen: 6 batches a minute per merchant), a burst of N allowed."""
    if max_wait is None:
        max_wait = settings.PARTNER_RATE_LIMIT_MAX_WAIT
    rate = count / period
    pace = pace or f"{count} per {period:g} s"
    # A guard band: a request leaves a few milliseconds after its slot is taken (more on a
    # busy machine), so two requests N apart could land at the partner just under P apart.
    period *= 1 + GUARD
    backend = _backend()
    deadline = time.monotonic() + max_wait
    slept = 0.0
    while True:
        wait = backend.take(key, count, period)
        if wait <= 0:
            return slept
        if time.monotonic() + wait > deadline:
            raise RateLimited(
                f"Chairside is pacing requests to this partner connection ({pace}); "
                f"the next free slot is {wait:.1f} s away",
                retry_after=wait,
            )
        # A little jitter, so the callers waiting for one connection don't all wake at once.
        pause = wait + random.uniform(0, period / 100)
        time.sleep(pause)
        slept += pause


def free_in(key: str, count: int, period: float) -> float:
    """Seconds until `acquire_window(key, count, period)` would find a slot; 0 if one is
    free now. Takes nothing: a caller with slow work to do before its call (reading a
    batch's patients) asks first, and comes back later instead of doing it for nothing."""
    return _backend().peek(key, count, period * (1 + GUARD))


# --- backends ---------------------------------------------------------------------------------


class LocalLimiter:
    """The same rule in memory, for one process (the embedded default, or Redis down)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[str, deque[float]] = {}

    def take(self, key: str, count: int, period: float) -> float:
        """Take a slot now and return 0, or return the seconds until one frees."""
        with self._lock:
            now = time.monotonic()
            slots = self._slots.setdefault(key, deque())
            while slots and slots[0] < now - period:
                slots.popleft()
            if len(slots) >= count:
                return max(1e-6, slots[-count] + period - now)
            slots.append(now)
            if len(self._slots) > 10_000:  # connections that went quiet
                self._slots = {k: v for k, v in self._slots.items() if v and v[-1] >= now - period}
            return 0.0

    def peek(self, key: str, count: int, period: float) -> float:
        with self._lock:
            now = time.monotonic()
            slots = [t for t in self._slots.get(key, ()) if t >= now - period]
            return max(1e-6, slots[-count] + period - now) if len(slots) >= count else 0.0


class RedisLimiter:
    def __init__(self, url: str):
        import redis  # only where Redis is configured

        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._client.register_script(_SCRIPT)
        self._peek = self._client.register_script(_PEEK)
        self._fallback = LocalLimiter()
        self._warned_at = 0.0

    def take(self, key: str, count: int, period: float) -> float:
        try:
            wait_us = self._script(keys=[key], args=[count, round(period * 1_000_000), uuid.uuid4().hex])
        except self._errors as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limiter: Redis unavailable (%s); limiting per process until it is back", type(exc).__name__)
            return self._fallback.take(key, count, period)
        return int(wait_us) / 1_000_000

    def peek(self, key: str, count: int, period: float) -> float:
        try:
            wait_us = self._peek(keys=[key], args=[count, round(period * 1_000_000)])
        except self._errors:
            return self._fallback.peek(key, count, period)
        return int(wait_us) / 1_000_000


_backends: dict[tuple[int, str], LocalLimiter | RedisLimiter] = {}
_backends_lock = threading.Lock()


def _backend() -> LocalLimiter | RedisLimiter:
    # Per process id: a forked worker child must not share its parent's sockets.
    url = settings.PARTNER_RATE_LIMIT_URL
    key = (os.getpid(), url)
    backend = _backends.get(key)
    if backend is None:
        with _backends_lock:
            backend = _backends.get(key)
            if backend is None:
                backend = RedisLimiter(url) if url else LocalLimiter()
                _backends.clear()
                _backends[key] = backend
    return backend


def reset_local_state():
    """Forget in-memory slots and clients (tests)."""
    with _backends_lock:
        _backends.clear()
