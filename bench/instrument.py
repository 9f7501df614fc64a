"""Counting inside the Chairside processes during a benchmark (never in production).

Each web and worker process counts, in memory, the SQL statements it runs, the tasks it
runs (and how long each took) and the task messages it publishes, and a daemon thread
adds the counts to one Redis hash (``bench:counts``) twice a second, so counting costs a
dictionary update per event, not a round trip. The driver reads the hash before and
after each phase. The web wrapper also notes when each approval webhook arrived (by
application id; the webhook body is thin and carries no PHI) for the chair latency.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter

import redis

COUNTS_KEY = "bench:counts"
ARRIVALS_KEY = "bench:webhook_arrivals"
FLUSH_SECONDS = 0.5

_counts: Counter = Counter()
_lock = threading.Lock()
_flusher_pid = None


def _redis():
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def count(name: str, amount: float = 1) -> None:
    with _lock:
        _counts[name] += amount
    _ensure_flusher()


def _ensure_flusher():
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    with _lock:
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="bench-counts", daemon=True).start()


def _flush_forever():
    client = _redis()
    while True:
        time.sleep(FLUSH_SECONDS)
        flush(client)


def flush(client=None) -> None:
    with _lock:
        pending = dict(_counts)
        _counts.clear()
        sends = _sends[:]
        del _sends[:]
    if not pending and not sends:
        return
    client = client or _redis()
    pipe = client.pipeline(transaction=False)
    for name, amount in pending.items():
        pipe.hincrbyfloat(COUNTS_KEY, name, amount)
    if sends:
        pipe.rpush(SENDS_KEY, *sends)
    pipe.execute()


def install_query_counter(role: str) -> None:
    """Count every SQL statement this process runs, as `<role>:queries`."""
    from django.db.backends.signals import connection_created

    def counting_wrapper(execute, sql, params, many, context):
        count(f"{role}:queries")
        return execute(sql, params, many, context)

    def on_connection(sender, connection, **kwargs):
        if counting_wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(counting_wrapper)

    connection_created.connect(on_connection, weak=False)


SENDS_KEY = "bench:sends"
_sends: list[str] = []


def install_send_recorder() -> None:
    """Note when each partner request leaves (right after its rate-limit slot), per connection."""
    from financing import ratelimit

    acquire = ratelimit.acquire

    def recording_acquire(key, rate, **kwargs):
        waited = acquire(key, rate, **kwargs)
        with _lock:
            _sends.append(f"{key} {time.time():.6f}")
        _ensure_flusher()
        return waited

    ratelimit.acquire = recording_acquire


def install_worker() -> None:
    from celery import signals

    install_query_counter("worker")
    install_send_recorder()
    started: dict[str, float] = {}

    @signals.task_prerun.connect(weak=False)
    def on_prerun(task_id=None, task=None, **kwargs):
        started[task_id] = time.perf_counter()

    @signals.task_postrun.connect(weak=False)
    def on_postrun(task_id=None, task=None, retval=None, **kwargs):
        elapsed = time.perf_counter() - started.pop(task_id, time.perf_counter())
        count(f"task:{task.name}")
        count(f"task_seconds:{task.name}", elapsed)
        if task.name.startswith("financing.") and isinstance(retval, str):
            count(f"outcome:{task.name}:{retval.split(' ')[0]}")

    install_publish_counter("worker")


def install_publish_counter(role: str) -> None:
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def on_publish(sender=None, headers=None, **kwargs):
        count(f"published:{sender}")


class WebApp:
    """WSGI wrapper for the web process: counts requests and notes approval webhooks."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        arrived = time.time()
        count("web:requests")
        if environ.get("PATH_INFO", "").startswith("/api/v1/webhooks/carecredit"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            if isinstance(event, dict) and event.get("status") == "APPROVED" and event.get("application_id"):
                # First arrival wins: a redelivery is not when the news reached Chairside.
                _arrivals.append((str(event["application_id"]), arrived))
                _ensure_arrival_flusher()
        return self.app(environ, start_response)


_arrivals: list[tuple[str, float]] = []
_arrival_flusher_pid = None


def _ensure_arrival_flusher():
    global _arrival_flusher_pid
    if _arrival_flusher_pid == os.getpid():
        return
    _arrival_flusher_pid = os.getpid()

    def run():
        client = _redis()
        while True:
            time.sleep(FLUSH_SECONDS)
            batch = []
            while _arrivals:
                batch.append(_arrivals.pop(0))
            if batch:
                pipe = client.pipeline(transaction=False)
                for application_id, at in batch:
                    pipe.hsetnx(ARRIVALS_KEY, application_id, repr(at))
                pipe.execute()

    threading.Thread(target=run, name="bench-arrivals", daemon=True).start()
