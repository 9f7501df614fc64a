"""The wall clock of a test run, pinned: `make test TEST_CLOCK=23:30` (README, "Tests").

CHAIRSIDE_TEST_CLOCK is "HH:MM" (the next time that UTC hour comes, today or tomorrow:
the pinned clock is then never behind the clocks it cannot pin) or "YYYY-MM-DD HH:MM"
(that UTC moment, e.g. a month end or a Sunday night). The first process to read it turns
it into an offset from the real clock, CHAIRSIDE_TEST_CLOCK_OFFSET, which every process it
starts inherits, so the pytest process, its live server and sandbox threads, the Celery
workers and beat, and `manage.py` subprocesses all share one clock that starts at the
pinned moment and ticks in real time (time-machine, tick=True).

What it pins: Python's wall clock (time.time, datetime.now, time.gmtime/localtime/strftime,
clock_gettime(CLOCK_REALTIME)), in every Python process that imports this module at
startup (`sitecustomize.py` next to it, on PYTHONPATH; tests/conftest.py sets both for
the processes it starts). What it does not: the monotonic clock (timeouts and sleeps keep
working), and the programs that are not Python: PostgreSQL and Redis (no query and no
script reads their clock as a date: the rate limiter's Lua script uses Redis's clock only
for intervals) and Chromium (its page scripts do nothing with the date; cookies it gets
expire relative to the pinned clock, which runs ahead of its own with an "HH:MM" pin).

libfaketime was tried first and does not work with Python 3.11 as Debian ships it
(0.9.10): with the monotonic clock left alone, time.sleep() fails with EINVAL (its
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) is rewritten into a negative time,
wolfcw/libfaketime#426); with it faked, threading.Event.wait(timeout) never returns.
"""

import os
import sys
from datetime import datetime, timedelta, timezone

ENV = "CHAIRSIDE_TEST_CLOCK"
OFFSET_ENV = "CHAIRSIDE_TEST_CLOCK_OFFSET"


def target(spec: str, now: datetime) -> datetime:
    spec = spec.strip().replace("T", " ")
    if " " in spec:
        return datetime.fromisoformat(spec).replace(tzinfo=timezone.utc)
    hour, minute = (int(part) for part in spec.split(":"))
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if moment > now else moment + timedelta(days=1)


def pin() -> float | None:
    """Pin this process's wall clock if CHAIRSIDE_TEST_CLOCK asks; returns the offset in
    seconds (None when the clock is the real one). Safe to call twice."""
    if hasattr(sys, "_chairside_test_clock_offset"):
        return sys._chairside_test_clock_offset
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    import time

    import time_machine

    real = time.time()
    if OFFSET_ENV not in os.environ:
        moment = target(spec, datetime.fromtimestamp(real, timezone.utc))
        os.environ[OFFSET_ENV] = repr(moment.timestamp() - real)
    offset = float(os.environ[OFFSET_ENV])
    time_machine.travel(real + offset, tick=True).start()
    sys._chairside_test_clock_offset = offset
    return offset
