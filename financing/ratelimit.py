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
at the chair), and a busy one never sees more than N in any P seconds. Slots are reserved in
order, so a caller that reserves a slot up to `max_wait` seconds ahead sleeps until it and
then sends; one that would wait longer gets `RateLimited` with `retry_after`, and its step
is re-scheduled instead of holding a worker (services._retry_later, which does not count it
as a failed attempt).

Redis keeps one small sorted set per connection (request times, expiring after a window)
and one Lua script updates it atomically against Redis's own clock, so the processes'
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
import threading
import time
import uuid
from collections import deque

from django.conf import settings

from .ports import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "chairside:rate:"

# KEYS[1]: sorted set of request times (µs, Redis clock) on one connection, reserved in
# order. ARGV: N requests, per P µs, the longest wait the caller accepts (µs), a unique
# member. Returns {1, wait µs} with the slot reserved, or {0, wait µs} without.
_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - period))
local count = redis.call('ZCARD', KEYS[1])
local at = now
if count > 0 then
  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  if last > at then at = last end
  if count >= limit then
    local nth = tonumber(redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')[2])
    if nth + period > at then at = nth + period end
  end
end
local wait = at - now
if wait > max_wait then return {0, wait} end
redis.call('ZADD', KEYS[1], string.format('%.0f', at), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((wait + period) / 1000) + 1000)
return {1, wait}
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
    if max_wait is None:
        max_wait = settings.PARTNER_RATE_LIMIT_MAX_WAIT
    count, period = window(rate)
    granted, wait = _backend().reserve(key, count, period, max_wait)
    if not granted:
        raise RateLimited(
            f"Chairside is pacing requests to this partner connection ({rate:g} per second); "
            f"the next free slot is {wait:.1f} s away",
            retry_after=wait,
        )
    if wait > 0:
        time.sleep(wait)
    return wait


# --- backends ---------------------------------------------------------------------------------


class LocalLimiter:
    """The same rule in memory, for one process (the embedded default, or Redis down)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[str, deque[float]] = {}

    def reserve(self, key: str, count: int, period: float, max_wait: float) -> tuple[bool, float]:
        with self._lock:
            now = time.monotonic()
            slots = self._slots.setdefault(key, deque())
            while slots and slots[0] < now - period:
                slots.popleft()
            at = max(now, slots[-1]) if slots else now
            if len(slots) >= count:
                at = max(at, slots[-count] + period)
            wait = at - now
            if wait > max_wait:
                return False, wait
            slots.append(at)
            if len(self._slots) > 10_000:  # connections that went quiet
                self._slots = {k: v for k, v in self._slots.items() if v and v[-1] >= now - period}
            return True, wait


class RedisLimiter:
    def __init__(self, url: str):
        import redis  # only where Redis is configured

        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._client.register_script(_SCRIPT)
        self._fallback = LocalLimiter()
        self._warned_at = 0.0

    def reserve(self, key: str, count: int, period: float, max_wait: float) -> tuple[bool, float]:
        try:
            granted, wait_us = self._script(
                keys=[key], args=[count, round(period * 1_000_000), round(max_wait * 1_000_000), uuid.uuid4().hex]
            )
        except self._errors as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limiter: Redis unavailable (%s); limiting per process until it is back", type(exc).__name__)
            return self._fallback.reserve(key, count, period, max_wait)
        return bool(granted), int(wait_us) / 1_000_000


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
