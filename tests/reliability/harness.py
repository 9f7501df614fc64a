"""The reliability harness (fixtures in conftest.py): real Celery worker and beat processes on the configured broker
and database, the web app on a live server (CareCredit's webhooks land there), both
sandboxes over HTTP, and ways to hurt them (kill -9, fault points, outages).

The worker runs with short time bounds (still nested: HTTP < soft < hard < lease <
visibility) so that a lease held by a killed worker runs out in seconds, not minutes.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import connection

from financing.models import FinancedCase

QUEUES = settings.CELERY_WORKER_QUEUES.split(",")

# Short, nested time bounds for the worker processes of these tests.
FAST_WORKER_ENV = {
    "PARTNER_CONNECT_TIMEOUT": "0.5",
    "PARTNER_READ_TIMEOUT": "1.5",
    "CELERY_TASK_SOFT_TIME_LIMIT": "3",
    "CELERY_TASK_TIME_LIMIT": "4",
    "CASE_LEASE_SECONDS": "5",
    "LEASE_HEARTBEAT_SECONDS": "1",
    "SWEEP_SECONDS": "1",
    "DECISION_POLL_SECONDS": "1",
    "RETRY_BASE_SECONDS": "0.5",
    "RETRY_MAX_SECONDS": "4",
    "STEP_MAX_ATTEMPTS": "4",
    "AMBIGUOUS_WRITE_SETTLE_SECONDS": "1",
}


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def on_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def purge_broker():
    """Empty every queue (and Redis's unacked set) so no earlier test's message runs here."""
    with current_app.connection_for_write() as conn:
        for queue in QUEUES:
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that was never declared has nothing to purge
                pass
        if on_redis():
            conn.default_channel.client.delete("unacked", "unacked_index")


def wait_for(predicate, timeout: float, *logs: Path, interval: float = 0.1):
    """Poll until predicate() is truthy; on timeout fail with the tail of each log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out after {timeout}s\n{tails}")


@dataclass
class CeleryProcesses:
    """One worker (restartable, killable) and one beat, as separate OS processes."""

    env: dict
    cwd: Path
    logdir: Path
    concurrency: int = 2
    with_beat: bool = True
    worker: subprocess.Popen | None = None
    beat: subprocess.Popen | None = None
    starts: int = 0
    logs: list = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.logdir / f"worker-{self.starts}.log"

    @property
    def beat_log(self) -> Path:
        return self.logdir / "beat.log"

    def all_logs(self) -> list[Path]:
        return [*self.logs, self.beat_log]

    def start(self):
        self.starts += 1
        self.logs.append(self.log)
        self.worker = self._spawn(
            [
                "worker", "--loglevel", "INFO", "--queues", ",".join(QUEUES), "--concurrency", str(self.concurrency),
                "--without-mingle", "--without-gossip", "--hostname", f"rel{self.starts}@%h",
            ],
            self.log,
        )
        wait_for(lambda: self._alive(self.worker, self.log) and " ready." in self.log.read_text(), 40, self.log)
        if self.with_beat and self.beat is None:
            self.beat = self._spawn(
                ["beat", "--loglevel", "INFO", "--schedule", str(self.logdir / "beat-schedule"),
                 "--pidfile", str(self.logdir / "beat.pid")],
                self.beat_log,
            )
            wait_for(lambda: self._alive(self.beat, self.beat_log) and "beat: Starting" in self.beat_log.read_text(), 30, self.beat_log)
        return self

    def _spawn(self, args, log: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @staticmethod
    def _alive(process, log: Path) -> bool:
        assert process.poll() is None, f"process exited:\n{log.read_text()[-4000:]}"
        return True

    def children(self) -> list[int]:
        """The worker's pool processes (beat runs apart, so these are all pool children)."""
        # Each thread lists the children it forked; the pool re-forks from a helper thread.
        pids = []
        for thread in Path(f"/proc/{self.worker.pid}/task").iterdir():
            try:
                pids += [int(pid) for pid in (thread / "children").read_text().split()]
            except FileNotFoundError:
                pass
        return pids

    def kill_child(self) -> int:
        [child] = self.children()  # concurrency 1: the one child is the one in the task
        os.kill(child, signal.SIGKILL)
        return child

    def kill_main(self) -> int:
        # Celery sets PDEATHSIG on its pool children: they die with the main process, like
        # a container or VM going away.
        pid = self.worker.pid
        os.kill(pid, signal.SIGKILL)
        self.worker.wait(timeout=10)
        wait_for(lambda: not _pids_in_group(pid), 10)
        return pid

    def stop_worker(self):
        if self.worker is not None and self.worker.poll() is None:
            _stop(self.worker)

    def stop(self):
        self.stop_worker()
        if self.beat is not None and self.beat.poll() is None:
            _stop(self.beat)


def _pids_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                pass
    return pids


def _stop(process: subprocess.Popen):
    # SIGKILL, not a warm shutdown: nothing a test left running matters any more, and the
    # next test purges the queues (Redis's unacked set included) before it starts.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def start_case(api, sandboxes, location, surname="Thompson", fees=("1250.00", "1250.00"), promotion="deferred_12", **patient):
    """A new Dentrix patient with an accepted plan, and a case for it through the REST API."""
    created = sandboxes.new_patient(surname, fees=fees, **patient)
    response = api.post(
        "/api/v1/cases/",
        {"location": location.code, "patient_id": created["patient_id"], "treatment_plan_id": created["treatment_plan_id"], "promotion": promotion},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return FinancedCase.objects.get(pk=response.json()["id"])


def state_of(case) -> str:
    return FinancedCase.objects.values_list("state", flat=True).get(pk=case.pk)


def posts(sandboxes, prefix):
    return sandboxes.dentrix_requests("POST", prefix)


@contextmanager
def broker_capture():
    """Every message written to the broker while the block runs, as the broker stored it.

    Redis: MONITOR sees each command with its arguments (our database only). Filesystem:
    a worker started with CHAIRSIDE_BROKER_KEEP_PROCESSED=1 keeps the files it consumed.
    Yields a function returning the messages,
    each followed by its decoded body (kombu stores bodies base64-encoded).
    """
    if on_redis():
        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        commands, stop = [], threading.Event()

        def watch():
            with client.monitor() as monitor:
                while not stop.is_set():
                    command = monitor.next_command()
                    if int(command.get("db", -1)) == db:
                        commands.append(command["command"])

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.2)
        try:
            yield lambda: _decoded([c.split(" ", 2)[2] for c in commands if c.startswith(("LPUSH ", "RPUSH "))])
        finally:
            stop.set()
            client.ping()  # wakes the monitor so it sees the flag
            watcher.join(timeout=5)
    else:
        processed = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["processed_folder"])
        for old in processed.glob("*.msg"):
            old.unlink()
        try:
            yield lambda: _decoded([f.read_text() for f in sorted(processed.glob("*.msg"))])
        finally:
            for kept in processed.glob("*.msg"):
                kept.unlink()


def _decoded(stored: list[str]) -> list[str]:
    texts = []
    for message in stored:
        envelope = json.loads(message)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        texts.append(message + "\n" + body)
    return texts
