"""`make bench`: how fast and how far Chairside goes, measured end to end. Prints one table.

    .venv/bin/python -m bench.pipeline            # the full suite (about 10-13 minutes on 2 cores)
    .venv/bin/python -m bench.pipeline --quick    # a tenth of the sizes, to try it out

It runs against PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/chairside_bench, dropped and re-created) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/11, flushed), and starts everything else
itself on ports that do not clash with `make run`: the CareCredit sandbox (8201) and the
Dentrix sandbox (8202), each location reaching them as a connection of its own; the web
server (gunicorn on 8200, which receives the webhooks); Celery workers. The sandboxes add
no latency unless a phase says so. Every figure is measured in the same run as what it
is compared with; docs/performance.md explains each phase and how to read the table.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chairside_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
WEB_PORT, CARECREDIT_PORT, DENTRIX_PORT = 8200, 8201, 8202
VAR_DIR = Path(os.environ.get("CHAIRSIDE_VAR_DIR") or "/tmp/chairside-bench")
WEB_URL = f"http://127.0.0.1:{WEB_PORT}"
CARECREDIT_URL = f"http://127.0.0.1:{CARECREDIT_PORT}"
DENTRIX_URL = f"http://127.0.0.1:{DENTRIX_PORT}"
QUEUES = "default,lender,pms,notify"
# A burst: this many coordinators of the group's 100 practices post their cases at once.
COORDINATORS = 16
FEES = [["1250.00", "1250.00"], ["2100.00"], ["1150.00", "310.00"], ["980.00", "185.00", "265.00"]]

# The driver is a Django process too (it seeds the database and reads the outcome).
os.environ.update(
    DATABASE_URL=DATABASE_URL,
    CELERY_BROKER_URL=REDIS_URL,
    BENCH_REDIS_URL=REDIS_URL,
    CHAIRSIDE_VAR_DIR=str(VAR_DIR),
    CHAIRSIDE_PUBLIC_URL=WEB_URL,
    DJANGO_SETTINGS_MODULE="config.settings",
)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
import requests  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Max  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from financing import ratelimit, services, tasks  # noqa: E402
from financing.services.decision import offer_json  # noqa: E402
from financing.models import (  # noqa: E402
    ArrangementTemplate,
    CaseState,
    Decision,
    FinancedCase,
    Location,
    Membership,
)
from financing.ports import Offer, PromotionKind  # noqa: E402
from notifications.models import ContactPreference, Notification  # noqa: E402

from . import instrument  # noqa: E402
from .procs import Proc, cpu_seconds, machine_cpu  # noqa: E402

FINAL = {CaseState.COMPLETED, CaseState.DECLINED, CaseState.NEEDS_ATTENTION, CaseState.EXPIRED, CaseState.CANCELLED}


def survive_db_restart(read):
    """The driver's own reads, retried if PostgreSQL was restarted under them (the machine
    is shared): the system under test reconnects by itself; the driver must too."""
    from django.db import OperationalError, close_old_connections

    for attempt in range(30):
        try:
            return read()
        except OperationalError:
            connection.close()
            close_old_connections()
            time.sleep(1)
    return read()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lower, upper = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (k - lower)


def max_in_window(times: list[float], window: float) -> int:
    """The most requests in any half-open window [t, t + window)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str, str]] = []

    def section(self, title: str):
        self.rows.append((title, "", "", ""))

    def add(self, metric: str, value: str, reference: str = "", verdict: str = ""):
        self.rows.append(("  " + metric, value, reference, verdict))

    def render(self) -> str:
        header = ("measure", "value", "reference / goal", "")
        widths = [max(len(r[i]) for r in self.rows + [header]) for i in range(4)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", line]
        for row in self.rows:
            if row[1:] == ("", "", ""):
                out.append("| " + row[0].ljust(sum(widths) + 9) + " |")
            else:
                out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        out.append(line)
        return "\n".join(out)


class SandboxLog:
    """Reads a sandbox's request log incrementally: (arrival, connection, method, shape, status)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.entries: list[list] = []
        self.next = 0

    def refresh(self) -> int:
        data = requests.get(f"{self.base_url}/_bench/requests", params={"start": self.next}, timeout=30).json()
        self.entries.extend(data["entries"])
        self.next = data["next"]
        return len(self.entries)

    def between(self, start: int, end: int) -> list[list]:
        return self.entries[start:end]


class Bench:
    def __init__(self, args):
        self.args = args
        self.table = Table()
        self.idle_rate: dict[str, float] = {}
        self.procs: dict[str, Proc] = {}
        self.workers: list[Proc] = []
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.logs_dir = VAR_DIR / "bench-logs"
        self.cc_log = SandboxLog(CARECREDIT_URL)
        self.dx_log = SandboxLog(DENTRIX_URL)
        self.rng = random.Random(7)
        self.cases_total = 0
        self.redis_pid = int(self.redis.info("server")["process_id"])

    # --- environment -------------------------------------------------------------------------

    def child_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            DJANGO_DEBUG="false",
            EMAIL_FILE_PATH=str(VAR_DIR / "outbox" / "email"),
            SMS_FILE_PATH=str(VAR_DIR / "outbox" / "sms"),
            SMS_BACKEND="notifications.sms.FileBackend",
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            # Beat runs as in production, so a message lost with the broker (the machine's
            # Redis is shared, and may be restarted) is re-driven; decision polls are fired
            # by the polling phase itself, not by the clock.
            SWEEP_SECONDS="20",
            DECISION_POLL_SECONDS="3600",
        )
        return env

    def start(self, name: str, argv: list[str], ready: str, timeout: float = 60) -> Proc:
        proc = Proc(name, argv, self.child_env(), ROOT, self.logs_dir)
        self.procs[name] = proc
        proc.wait_for_log(ready, timeout)
        return proc

    def start_worker(self, name: str, concurrency: int | None = None) -> Proc:
        argv = [
            sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "--loglevel", "INFO",
            "--queues", QUEUES, "--concurrency", str(concurrency or self.args.concurrency), "--hostname", f"{name}@%h",
            "--without-mingle", "--without-gossip",
        ]
        if name == "worker-1":
            # Never recycled, so that a leak would show in its resident memory (production
            # recycles a child every 500 tasks, which would hide one).
            argv += ["--max-tasks-per-child", "1000000000"]
        proc = self.start(name, argv, " ready.")
        self.workers.append(proc)
        return proc

    def setup(self):
        for port in (WEB_PORT, CARECREDIT_PORT, DENTRIX_PORT):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise SystemExit(f"port {port} is in use: is another benchmark (or something else) running?")
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        say(f"fresh database {DATABASE_URL.rsplit('/', 1)[1]} and Redis {REDIS_URL}")
        import psycopg

        admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
        db_name = DATABASE_URL.rsplit("/", 1)[1]
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{db_name}"')
        call_command("migrate", verbosity=0, interactive=False)
        self.redis.flushdb()
        say("starting the sandboxes, the web server and one worker")
        python = sys.executable
        for kind, port in (("carecredit", CARECREDIT_PORT), ("dentrix", DENTRIX_PORT)):
            self.start(
                f"{kind}-sandbox",
                [
                    python, "-m", "gunicorn", f"bench.sandboxes:make_app('{kind}', {port})", "--bind", f"127.0.0.1:{port}",
                    "--workers", "1", "--worker-class", "gthread", "--threads", "16", "--keep-alive", "60",
                    "--log-level", "warning",
                ],
                "",
            )
            self.wait_http(f"http://127.0.0.1:{port}/_bench/requests")
        self.start(
            "web",
            [
                python, "-m", "gunicorn", "bench.wsgi:application", "--bind", f"127.0.0.1:{WEB_PORT}",
                "--workers", "2", "--worker-class", "gthread", "--threads", "8", "--keep-alive", "30",
                "--log-level", "warning",
            ],
            "",
        )
        self.wait_http(f"{WEB_URL}/api/schema/", accept=(200, 401, 403))
        self.start_worker("worker-1")
        self.start(
            "beat",
            [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO", "--schedule", str(VAR_DIR / "bench-beat-schedule")],
            "beat: Starting",
        )
        self.seed()

    def wait_http(self, url, accept=(200,), timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=5).status_code in accept:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer:\n{self.procs['web'].log_tail()}")

    def stop(self):
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    # --- seeding --------------------------------------------------------------------------------

    def seed(self):
        template = ArrangementTemplate.objects.create(name="Bench group standard")
        self.locations: dict[str, Location] = {}

        def location(code, pms_rate, lender_rate, merchant):
            self.locations[code] = Location.objects.create(
                code=code.lower(), name=f"Bench {code}", template=template,
                pms_base_url=f"{DENTRIX_URL}/c/{code}", pms_api_key="sandbox",
                lender_base_url=f"{CARECREDIT_URL}/c/{code}", lender_client_id="chairside-sandbox",
                lender_client_secret="sandbox-secret", merchant_number=merchant,
                pms_requests_per_second=Decimal(pms_rate), lender_requests_per_second=Decimal(lender_rate),
            )

        # A large group: the throughput and latency cases arrive across its 100 practices,
        # each with its own Dentrix connector (5 requests/s) and merchant number (20/s).
        for i in range(1, 101):
            location(f"G{i:03d}", "5", "20", f"53481200{i:08d}")
        # The polling phase measures the lender poll; the decided cases then settle through
        # connectors that allow 20 requests/s, so their pacing does not stretch the phase.
        for i in range(1, self.args.poll_merchants + 1):
            location(f"P{i:02d}", "20", "20", f"53481300{i:08d}")
        for i in range(1, self.args.backlog_connections + 1):
            location(f"R{i:02d}", str(self.args.backlog_rate), "20", f"53481400{i:08d}")
        # The overhead comparison measures cost, not pacing: the bare script has no limiter.
        for i in range(1, 11):
            location(f"O{i:02d}", "1000", "1000", f"53481500{i:08d}")
        self.group = [loc for code, loc in self.locations.items() if code.startswith("G")]
        self.unthrottled = [loc for code, loc in self.locations.items() if code.startswith("O")]
        user = get_user_model().objects.create_user("bench-coordinator", email="coordinator@example.com", password="x")
        ContactPreference.objects.create(user=user, phone="+15555550100", by_email=True, by_sms=True)
        Membership.objects.bulk_create(
            [Membership(user=user, location=loc, role=Membership.Role.COORDINATOR) for loc in self.locations.values()]
        )
        self.coordinator = user
        self.token = Token.objects.create(user=user).key

    def new_patients(self, count: int, last_name: str = "Bench") -> list[tuple[str, str]]:
        created = []
        for start in range(0, count, 1000):
            batch = [
                {"last_name": last_name, "fees": FEES[(start + i) % len(FEES)]}
                for i in range(min(1000, count - start))
            ]
            response = requests.post(f"{DENTRIX_URL}/_bench/patients", json={"patients": batch}, timeout=120)
            response.raise_for_status()
            created.extend(tuple(pair) for pair in response.json())
        return created

    # --- measuring ------------------------------------------------------------------------------

    def counters(self) -> Counter:
        time.sleep(instrument.FLUSH_SECONDS * 2.5)  # let every process flush its counts
        raw = self.redis.hgetall(instrument.COUNTS_KEY)
        return Counter({k.decode(): float(v) for k, v in raw.items()})

    def pg_backends(self) -> dict[int, float]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {pid: cpu_seconds(pid) for (pid,) in cursor.fetchall()}

    def cpu_snapshot(self) -> dict:
        return {
            "web": self.procs["web"].cpu(),
            "workers": sum(w.cpu() for w in self.workers if w.alive()),
            "sandboxes": self.procs["carecredit-sandbox"].cpu() + self.procs["dentrix-sandbox"].cpu(),
            "postgres": self.pg_backends(),
            "redis": cpu_seconds(self.redis_pid, with_reaped_children=False),
            "driver": time.process_time(),
        }

    @staticmethod
    def cpu_delta(before: dict, after: dict) -> dict:
        delta = {k: after[k] - before[k] for k in ("web", "workers", "sandboxes", "redis", "driver")}
        delta["postgres"] = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
        return delta

    def mark(self) -> dict:
        """Where every log and counter stands now, for a phase's before/after."""
        return {
            "time": time.time(),
            "cc": self.cc_log.refresh(),
            "dx": self.dx_log.refresh(),
            "counters": self.counters(),
            "cpu": self.cpu_snapshot(),
            "case_pk": FinancedCase.objects.aggregate(m=Max("pk"))["m"] or 0,
            "notification_pk": Notification.objects.aggregate(m=Max("pk"))["m"] or 0,
        }

    def phase_costs(self, start: dict, end: dict, cases: int) -> dict:
        counts = end["counters"] - start["counters"]
        partner = self.cc_log.between(start["cc"], end["cc"]) + self.dx_log.between(start["dx"], end["dx"])
        tasks_run = sum(v for k, v in counts.items() if k.startswith("task:"))
        return {
            "tasks": tasks_run,
            "published": sum(v for k, v in counts.items() if k.startswith("published:")),
            "queries": counts["web:queries"] + counts["worker:queries"],
            "web_queries": counts["web:queries"],
            "worker_queries": counts["worker:queries"],
            "partner_calls": len(partner),
            "partner_by_shape": Counter(f"{e[2]} {e[3]}" for e in partner),
            "counts": counts,
            "cpu": self.cpu_delta(start["cpu"], end["cpu"]),
            "cases": cases,
        }

    def wait_settled(self, start: dict, expected_cases: int, timeout: float, label: str) -> float:
        """Until every case since `start` is final and every notification handed over."""
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while True:
            states = survive_db_restart(lambda: dict(
                FinancedCase.objects.filter(pk__gt=start["case_pk"]).values_list("state").annotate(n=Count("pk"))
            ))
            final = sum(n for state, n in states.items() if state in FINAL)
            queued = survive_db_restart(
                lambda: Notification.objects.filter(pk__gt=start["notification_pk"], status=Notification.Status.QUEUED).count()
            )
            total = sum(states.values())
            if total >= expected_cases and final >= expected_cases and queued == 0:
                return time.time()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: not settled after {timeout:g} s: {states}, {queued} notifications queued")
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"  {label}: {final}/{expected_cases} cases final, {queued} notifications queued")
            time.sleep(0.5)

    def end_times(self, case_ids) -> dict[int, float]:
        """When each case was done: its last notification handed over (or its completion)."""
        done = {}
        refs = dict(FinancedCase.objects.filter(pk__in=case_ids).values_list("reference", "pk"))
        for reference, sent_at in Notification.objects.filter(reference__in=refs).values_list("reference", "sent_at"):
            if sent_at is not None:
                done[refs[reference]] = max(done.get(refs[reference], 0.0), sent_at.timestamp())
        for pk, completed_at in FinancedCase.objects.filter(pk__in=case_ids).values_list("pk", "completed_at"):
            if completed_at is not None:
                done[pk] = max(done.get(pk, 0.0), completed_at.timestamp())
        return done

    def problems(self, start: dict) -> str:
        states = dict(FinancedCase.objects.filter(pk__gt=start["case_pk"]).values_list("state").annotate(n=Count("pk")))
        bad = {s: n for s, n in states.items() if s in (CaseState.NEEDS_ATTENTION, CaseState.EXPIRED, CaseState.CANCELLED)}
        return ", ".join(f"{n} {s}" for s, n in bad.items())

    # --- submitting cases ---------------------------------------------------------------------

    def api_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        return session

    def submit(self, session, location: Location, patient: tuple[str, str], promotion: str) -> int:
        response = session.post(
            f"{WEB_URL}/api/v1/cases/",
            json={"location": location.code, "patient_id": patient[0], "treatment_plan_id": patient[1], "promotion": promotion},
            timeout=60,
        )
        if response.status_code != 201:
            raise RuntimeError(f"capture answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    def submit_many(self, work: list[tuple[Location, tuple[str, str], str]], threads: int = COORDINATORS) -> list[int]:
        local = threading.local()

        def one(item):
            if not hasattr(local, "session"):
                local.session = self.api_session()
            return self.submit(local.session, *item)

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, work))

    def burst_work(self, count: int, last_name: str = "Bench", locations=None):
        patients = self.new_patients(count, last_name)
        locations = locations or self.group
        return [
            (locations[i % len(locations)], patient, "reduced_apr_36" if i % 2 else "deferred_12")
            for i, patient in enumerate(patients)
        ]

    # --- phases ---------------------------------------------------------------------------------

    def run(self):
        started, machine_at_start = time.time(), machine_cpu()
        self.setup()
        self.warm_up()
        timings = []
        for phase in self.args.phases.split(","):
            began = time.time()
            getattr(self, phase)()
            timings.append(f"{phase} {time.time() - began:.0f} s")
        say("phase times: " + ", ".join(timings))
        self.memory()
        used = {k: v - machine_at_start[k] for k, v in machine_cpu().items()}
        self.table.section(
            f"Run: {time.time() - started:.0f} s wall in all, {self.cases_total:,} cases end to end; the machine's CPU "
            f"{used['busy'] / sum(used.values()):.0%} busy, {used['idle'] / sum(used.values()):.0%} idle, "
            f"{used['steal'] / sum(used.values()):.0%} taken by the host (steal)"
        )
        table = self.table.render()
        (VAR_DIR / "bench-table.txt").write_text(table + "\n")
        print("\n" + table)
        print(f"(also in {VAR_DIR / 'bench-table.txt'}; process logs in {self.logs_dir})")

    def warm_up(self):
        say("warm-up: 30 cases (imports, connections, tokens)")
        start = self.mark()
        self.submit_many(self.burst_work(30))
        self.wait_settled(start, 30, 120, "warm-up")
        self.cases_total += 30
        self.rss_start = {w.name: w.rss() for w in self.workers}

    def throughput(self):
        for workers in (1, 2):
            if len(self.workers) < workers:
                self.start_worker(f"worker-{workers}")
            count = self.args.burst
            work = self.burst_work(count)
            say(f"throughput: a burst of {count} cases, {workers} worker process(es) × {self.args.concurrency}")
            start = self.mark()
            t0 = time.time()
            ids = self.submit_many(work)
            submitted = time.time()
            self.wait_settled(start, count, 900, f"burst/{workers}")
            end = self.mark()
            ends = self.end_times(ids)
            last = max(ends.values())
            elapsed = last - t0
            costs = self.phase_costs(start, end, count)
            self.cases_total += count
            self.table.section(f"Throughput: burst of {count} cases across 100 locations, {workers} worker process(es) × concurrency {self.args.concurrency}")
            self.table.add("cases per minute, end to end", f"{count / elapsed * 60:,.0f}", f"{elapsed:.1f} s from the first POST to the last confirmation handed over")
            self.table.add("  capture (POST /api/v1/cases/) alone", f"{count / (submitted - t0) * 60:,.0f}/min", f"{COORDINATORS} coordinators posting at once")
            self.table.add("tasks per second", f"{costs['tasks'] / elapsed:,.1f}", f"{costs['tasks'] / count:.2f} tasks per case")
            if workers == 1:
                self.per_case_costs(costs)
                self.throughput_1 = count / elapsed * 60
            else:
                self.table.add("scaling, 2 processes vs 1", f"×{count / elapsed * 60 / self.throughput_1:.2f}", "on 2 cores shared with the web server, PostgreSQL and the sandboxes")
            bad = self.problems(start)
            if bad:
                self.table.add("cases not completed", bad, "", "CHECK")
            self.throughput_last = count / elapsed

    def per_case_costs(self, costs: dict):
        n = costs["cases"]
        shapes = costs["partner_by_shape"]
        pms = sum(v for k, v in shapes.items() if "/patients" in k or "/accounts" in k)
        lender = costs["partner_calls"] - pms
        self.table.add("broker messages per case (tasks published)", f"{costs['published'] / n:.2f}", "send, decision(web), arrangement, note, 2 notifications")
        self.table.add("database queries per case", f"{costs['queries'] / n:.1f}", f"web {costs['web_queries'] / n:.1f} + workers {costs['worker_queries'] / n:.1f}")
        self.table.add("partner HTTP calls per case", f"{costs['partner_calls'] / n:.2f}", f"Dentrix {pms / n:.2f} + CareCredit {lender / n:.2f} (token requests included)")
        detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(shapes.items()))
        say(f"  partner calls per case by kind: {detail}")
        per_task = {
            k.split(":", 1)[1]: costs["counts"].get(f"task_seconds:{k.split(':', 1)[1]}", 0) / v * 1000
            for k, v in costs["counts"].items() if k.startswith("task:") and v
        }
        say("  mean task time (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_task.items())))
        cpu = costs["cpu"]
        self.table.add(
            "CPU per case, all processes", f"{sum(v for k, v in cpu.items() if k != 'driver') / n * 1000:.0f} ms",
            ", ".join(f"{k} {v / n * 1000:.0f}" for k, v in cpu.items() if k != "driver") + " (ms)",
        )

    def latency(self):
        count = self.args.latency
        rate = self.args.latency_rate
        background_rate = max(0.5, self.throughput_last * self.args.background_share - rate)
        duration = count / rate
        say(f"latency: {count} approved cases at {rate:g}/s over a background of {background_rate:.1f} cases/s")
        measured = self.burst_work(count)
        mix = ["Bench", "Bench", "Bench", "Decline-Bench", "Partial-Bench", "Pending-Bench"]
        n_background = int(background_rate * (duration + 5))
        background = []
        for i, name in enumerate(mix):
            patients = self.new_patients(sum(1 for j in range(n_background) if j % len(mix) == i), name)
            background.extend(patients)
        self.rng.shuffle(background)
        start = self.mark()
        measured_ids: list[int] = []
        errors: list[str] = []

        def paced(items, per_second, out):
            session = self.api_session()
            t0 = time.monotonic()
            for i, item in enumerate(items):
                delay = t0 + i / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    case_id = self.submit(session, *item)
                except Exception as exc:  # keep the pace; report at the end
                    errors.append(str(exc)[:200])
                    continue
                if out is not None:
                    out.append(case_id)

        bg_items = [(self.group[(i * 7) % len(self.group)], p, "deferred_12") for i, p in enumerate(background)]
        threads = [
            threading.Thread(target=paced, args=(measured, rate, measured_ids)),
            threading.Thread(target=paced, args=(bg_items[: len(bg_items) // 2], background_rate / 2, None)),
            threading.Thread(target=paced, args=(bg_items[len(bg_items) // 2:], background_rate / 2, None)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.wait_settled(start, count + len(bg_items) - len(errors), 600, "latency")
        ends = self.end_times(measured_ids)
        app_ids = dict(FinancedCase.objects.filter(pk__in=measured_ids).values_list("pk", "application_id"))
        arrivals = {k.decode(): float(v) for k, v in self.redis.hgetall(instrument.ARRIVALS_KEY).items()}
        latencies = [
            ends[pk] - arrivals[app_ids[pk]] for pk in measured_ids if pk in ends and app_ids.get(pk) in arrivals
        ]
        capture_to_done = [
            ends[pk] - t.timestamp()
            for pk, t in FinancedCase.objects.filter(pk__in=measured_ids).values_list("pk", "captured_at") if pk in ends
        ]
        self.cases_total += count + len(bg_items)
        self.table.section(f"Latency at the chair: {len(latencies)} approved cases at {rate:g}/s, background {background_rate:.1f} cases/s (mixed personas)")
        self.table.add(
            "approval webhook → arrangement, note, confirmation handed over",
            f"p50 {percentile(latencies, 50) * 1000:.0f} ms",
            f"p95 {percentile(latencies, 95) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms",
        )
        self.table.add(
            "capture (the patient's yes) → confirmation handed over",
            f"p50 {percentile(capture_to_done, 50) * 1000:.0f} ms",
            f"p95 {percentile(capture_to_done, 95) * 1000:.0f} ms, p99 {percentile(capture_to_done, 99) * 1000:.0f} ms (by hand: 8-12 minutes)",
        )
        if errors:
            self.table.add("captures refused", str(len(errors)), errors[0], "CHECK")

    def one_at_a_time(self, n: int) -> tuple[list[float], dict]:
        """n cases through Chairside, each waited for before the next: (machine time each, costs)."""
        work = self.burst_work(n, locations=self.unthrottled)
        session = self.api_session()
        start = self.mark()
        walls = []
        for location, patient, promotion in work:
            t0 = time.time()
            case_id = self.submit(session, location, patient, promotion)
            while True:
                case = FinancedCase.objects.filter(pk=case_id).values("state", "reference").get()
                if case["state"] in FINAL and not Notification.objects.filter(
                    reference=case["reference"], status=Notification.Status.QUEUED
                ).exists():
                    break
                time.sleep(0.01)
            # The machine's part: everything but the second the simulated patient spends on
            # the hosted application (application recorded → approval webhook arrived).
            case = FinancedCase.objects.get(pk=case_id)
            arrived = float(self.redis.hget(instrument.ARRIVALS_KEY, case.application_id) or 0)
            if not arrived:
                time.sleep(instrument.FLUSH_SECONDS * 2)
                arrived = float(self.redis.hget(instrument.ARRIVALS_KEY, case.application_id))
            patient_wait = arrived - case.application_sent_at.timestamp()
            walls.append(self.end_times([case_id])[case_id] - t0 - patient_wait)
        end = self.mark()
        self.cases_total += n
        return walls, self.net_of_idle(self.phase_costs(start, end, n), end["time"] - start["time"])

    def by_bare_script(self, n: int) -> tuple[list[float], float, dict]:
        """The same partner calls for n cases by a plain script: (wall each, script CPU, costs)."""
        work = self.burst_work(n, locations=self.unthrottled)
        # The bare script asks for the decision right after applying: decide at once.
        requests.post(f"{CARECREDIT_URL}/_bench/config", json={"decision_delay": 0}, timeout=10)
        start = self.mark()
        walls, cpu = [], 0.0
        dentrix, carecredit = requests.Session(), requests.Session()
        dentrix.headers["X-API-Key"] = "sandbox"
        for location, (patient_id, plan_id), promotion in work:
            c0, t0 = time.process_time(), time.time()
            bare_case(dentrix, carecredit, location, patient_id, plan_id)
            walls.append(time.time() - t0)
            cpu += time.process_time() - c0
        end = self.mark()
        requests.post(f"{CARECREDIT_URL}/_bench/config", json={"decision_delay": 1.0}, timeout=10)
        return walls, cpu, self.net_of_idle(self.phase_costs(start, end, n), end["time"] - start["time"])

    def measure_idle(self):
        """CPU per second of every process while nothing happens (timers, pollers, heartbeats)."""
        start = self.mark()
        time.sleep(3)
        end = self.mark()
        seconds = end["time"] - start["time"]
        self.idle_rate = {k: v / seconds for k, v in self.cpu_delta(start["cpu"], end["cpu"]).items()}

    def net_of_idle(self, costs: dict, seconds: float) -> dict:
        """One-at-a-time phases spend most of their time idle (the patient's second): charge
        the cases with what they cost above the idle baseline, not with the baseline."""
        costs["cpu"] = {k: max(0.0, v - self.idle_rate.get(k, 0.0) * seconds) for k, v in costs["cpu"].items()}
        return costs

    def partner_latency(self, seconds: float):
        for base in (CARECREDIT_URL, DENTRIX_URL):
            for location in self.unthrottled:
                requests.post(f"{base}/_bench/delay", json={"connection": location.code.upper(), "seconds": seconds}, timeout=10)

    def overhead(self):
        n = self.args.overhead
        say(f"overhead: {n} cases one at a time through Chairside, then the same calls by a bare script")
        self.measure_idle()
        walls, chairside = self.one_at_a_time(n)
        bare_walls, bare_cpu, bare = self.by_bare_script(n)
        c_cpu = chairside["cpu"]
        orchestration = c_cpu["web"] + c_cpu["workers"] + c_cpu["postgres"] + c_cpu["redis"]
        chairside_total = (orchestration + c_cpu["sandboxes"]) / n
        bare_total = (bare_cpu + bare["cpu"]["sandboxes"]) / n
        wall_c, wall_b = statistics.mean(walls), statistics.mean(bare_walls)
        self.table.section(f"Overhead: {n} cases one at a time, Chairside vs a bare script making the same partner calls")
        self.table.add(
            "partner calls per case", f"{chairside['partner_calls'] / n:.1f} vs {bare['partner_calls'] / n:.1f}",
            "Chairside also receives the lender's webhook and re-fetches the decision it announces",
        )
        self.table.add(
            "wall time per case, partners answering at once", f"{wall_c * 1000:.0f} ms vs {wall_b * 1000:.0f} ms",
            f"ratio {wall_c / wall_b:.2f} (goal < 2, then < 1.5)", "ok" if wall_c / wall_b < 2 else "over",
        )
        self.table.add(
            "CPU per case (all processes, partners included, net of idle)",
            f"{chairside_total * 1000:.1f} ms vs {bare_total * 1000:.1f} ms",
            f"ratio {chairside_total / bare_total:.2f} (goal < 2, then < 1.5)", "ok" if chairside_total / bare_total < 2 else "over",
        )
        self.table.add(
            "  Chairside CPU per case, by process",
            f"{orchestration / n * 1000:.1f} ms",
            f"web {c_cpu['web'] / n * 1000:.1f}, workers {c_cpu['workers'] / n * 1000:.1f}, PostgreSQL {c_cpu['postgres'] / n * 1000:.1f}, Redis {c_cpu['redis'] / n * 1000:.1f}; sandboxes {c_cpu['sandboxes'] / n * 1000:.1f}",
        )
        self.table.add(
            "  bare script CPU per case", f"{bare_cpu / n * 1000:.1f} ms",
            f"sandboxes {bare['cpu']['sandboxes'] / n * 1000:.1f} ms",
        )
        latency = self.args.partner_latency
        if latency:
            m = max(3, n // 2)
            say(f"overhead: {m} cases each way again, every partner call taking {latency * 1000:.0f} ms")
            self.partner_latency(latency)
            try:
                walls, _ = self.one_at_a_time(m)
                bare_walls, _, _ = self.by_bare_script(m)
            finally:
                self.partner_latency(0)
            wall_c, wall_b = statistics.mean(walls), statistics.mean(bare_walls)
            self.table.add(
                f"wall time per case, partners answering in {latency * 1000:.0f} ms", f"{wall_c * 1000:.0f} ms vs {wall_b * 1000:.0f} ms",
                f"ratio {wall_c / wall_b:.2f} (goal < 2, then < 1.5)", "ok" if wall_c / wall_b < 1.5 else ("< 2" if wall_c / wall_b < 2 else "over"),
            )

    def polling(self):
        total = self.args.poll
        merchants = [loc for code, loc in self.locations.items() if code.startswith("P")]
        per_merchant = total // len(merchants)
        # 800 decisions in a minute across ten merchants: a busy group's poll after a webhook outage.
        changed_share = 0.08
        say(f"polling: {total} cases awaiting a decision across {len(merchants)} merchants, {changed_share:.0%} decided since the last poll")
        # Only the cases that move on need patients in Dentrix; the others never reach it.
        patients = iter(self.new_patients(int(per_merchant * changed_share) * len(merchants)))
        cases, applications = [], []
        for m, location in enumerate(merchants):
            for i in range(per_merchant):
                index = m * per_merchant + i
                changed = i < per_merchant * changed_share
                last_name = ("Decline-Bench" if i % 2 else "Bench") if changed else "Expire-Bench"
                applications.append({
                    "merchant_number": location.merchant_number, "reference": f"poll-{index}",
                    "requested_amount": "2500.00", "last_name": last_name, "created_ago": 3600,
                    # decided 10 s ago, after the previous poll; the others never are
                    "decision_delay": 3590 if changed else 0,
                })
                cases.append((location, next(patients) if changed else (f"9{index:06d}", f"poll-{index}")))
        app_ids = []
        for start in range(0, len(applications), 2000):
            app_ids += requests.post(
                f"{CARECREDIT_URL}/_bench/applications", json={"applications": applications[start:start + 2000]}, timeout=120
            ).json()
        sent_at = timezone.now() - timedelta(hours=1)
        FinancedCase.objects.bulk_create(
            [
                FinancedCase(
                    location=location, coordinator=self.coordinator, patient_id=patient[0], guarantor_id=patient[0],
                    treatment_plan_id=patient[1], patient_short_name="Ava B.", plan_total=Decimal("2500.00"),
                    procedures=[{"code": "D2740", "tooth": "3", "surface": "", "fee": "2500.00"}],
                    promotion="deferred_12", state=CaseState.AWAITING_DECISION if i % 3 else CaseState.APPLICATION_SENT,
                    application_id=app_id, apply_url=f"{CARECREDIT_URL}/apply/{app_id}", application_sent_at=sent_at,
                )
                for i, ((location, patient), app_id) in enumerate(zip(cases, app_ids))
            ],
            batch_size=1000,
        )
        previous_poll = timezone.now() - timedelta(seconds=60)
        Location.objects.filter(pk__in=[m.pk for m in merchants]).update(lender_polled_until=previous_poll)
        # One merchant's lender connection answers slowly: the others must not wait for it.
        slow = merchants[0]
        requests.post(f"{CARECREDIT_URL}/_bench/delay", json={"connection": slow.code.upper(), "seconds": 3.0}, timeout=10)
        start = self.mark()
        t0 = time.time()
        tasks.poll_decisions.delay()
        done = {}
        deadline = time.monotonic() + 300
        while len(done) < len(merchants) and time.monotonic() < deadline:
            for pk, polled in Location.objects.filter(pk__in=[m.pk for m in merchants]).values_list("pk", "lender_polled_until"):
                if polled and polled > previous_poll and pk not in done:
                    done[pk] = time.time() - t0
            time.sleep(0.05)
        listed = time.time()
        requests.post(f"{CARECREDIT_URL}/_bench/delay", json={"connection": slow.code.upper(), "seconds": 0}, timeout=10)
        moved_expected = int(per_merchant * changed_share) * len(merchants)
        settled = self.wait_settled_subset(merchants, moved_expected, 600)
        end = self.mark()
        costs = self.phase_costs(start, end, moved_expected)
        listing = [e for e in self.cc_log.between(start["cc"], end["cc"]) if e[2] == "GET" and e[3] == "/v1/applications"]
        per_conn = defaultdict(list)
        for e in self.cc_log.between(start["cc"], end["cc"]):
            per_conn[e[1]].append(e[0])
        peak = max(max_in_window(v, 1.0) for v in per_conn.values())
        others = [v for pk, v in done.items() if pk != slow.pk]
        self.cases_total += moved_expected
        self.table.section(f"Polling: {total:,} cases awaiting a decision, {len(merchants)} merchants, one beat interval = 60 s")
        self.table.add(
            "all merchants polled (beat → every listing applied)", f"{max(done.values()):.2f} s",
            "goal: within one beat interval (60 s)", "ok" if len(done) == len(merchants) and max(done.values()) < 60 else "over",
        )
        self.table.add(
            "  the other merchants, while one answers 3 s late", f"{max(others):.2f} s" if others else "-",
            f"slow merchant: {done.get(slow.pk, float('nan')):.2f} s; a poll task per merchant, none waits for another",
        )
        self.table.add(
            "lender requests for the whole poll", f"{len(listing)} listing pages",
            f"per case: {total:,} GETs ({total / len(merchants) / 20:.0f} s per merchant at 20/s); cases_to_poll took 1,000 per interval",
        )
        self.table.add(
            "highest request rate on one merchant connection", f"{peak}/s", "limit 20/s per merchant",
            "ok" if peak <= 20 else "over",
        )
        self.table.add(
            "decided cases moved on", f"{settled['moved']:,} of {moved_expected:,}",
            f"and settled (arrangement, note, confirmation) {settled['at'] - t0:.1f} s after the poll began",
        )
        say(f"  polling costs: {costs['published']:.0f} messages, {costs['queries']:.0f} queries, {len(listing)} listings")
        self.poll_listed_at = listed

    def wait_settled_subset(self, locations, expected_moved, timeout):
        deadline = time.monotonic() + timeout
        while True:
            moved = FinancedCase.objects.filter(location__in=locations, state__in=FINAL).count()
            busy = FinancedCase.objects.filter(
                location__in=locations, state__in=[CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN]
            ).count()
            queued = Notification.objects.filter(status=Notification.Status.QUEUED).count()
            if moved >= expected_moved and busy == 0 and queued == 0:
                return {"moved": moved, "at": time.time()}
            if time.monotonic() > deadline:
                raise RuntimeError(f"polling: {moved}/{expected_moved} moved, {busy} busy, {queued} queued")
            time.sleep(0.5)

    def recovery(self):
        count = self.args.backlog
        backlog_locations = [loc for code, loc in self.locations.items() if code.startswith("R")]
        rate = self.args.backlog_rate
        extra_workers = max(0, self.args.recovery_workers - len(self.workers))
        for i in range(extra_workers):
            # A step whose connection is at its limit waits for its slot: a worker for a
            # paced queue needs more pool processes than cores (see "Scaling out").
            self.start_worker(f"worker-{len(self.workers) + 1}", self.args.recovery_concurrency)
        say(
            f"recovery: {count} cases whose arrangement failed during a 10-minute Dentrix outage, "
            f"{len(backlog_locations)} connections at {rate:g}/s, {len(self.workers)} worker processes"
        )
        patients = self.new_patients(count)
        offer = offer_json(Offer("deferred_12", PromotionKind.DEFERRED, 12, Decimal("0.00"), Decimal("200.00")))
        outage_started = timezone.now() - timedelta(minutes=10)
        cases = []
        for i, patient in enumerate(patients):
            location = backlog_locations[i % len(backlog_locations)]
            failed_at = outage_started + timedelta(seconds=self.rng.uniform(0, 540))
            cases.append(FinancedCase(
                location=location, coordinator=self.coordinator, patient_id=patient[0], guarantor_id=patient[0],
                treatment_plan_id=patient[1], patient_short_name="Ava B.", plan_total=Decimal("2500.00"),
                procedures=[{"code": "D2740", "tooth": "3", "surface": "", "fee": "2500.00"}], promotion="deferred_12",
                state=CaseState.APPROVED, application_id=f"app_backlog{i:06d}", application_sent_at=failed_at,
                decided_at=failed_at, step_attempts=self.rng.randint(1, 4),
                next_attempt_at=timezone.now(), last_error="Dentrix could not be reached (connection refused or unknown host)",
            ))
        self.rng.shuffle(cases)  # the retries of many practices come due interleaved
        FinancedCase.objects.bulk_create(cases, batch_size=1000)
        Decision.objects.bulk_create(
            [
                Decision(case=case, status="approved", raw_status="APPROVED", requested_amount=Decimal("2500.00"),
                         approved_amount=Decimal("2500.00"), credit_limit=Decimal("2500.00"), offers=[offer],
                         decided_at=case.decided_at)
                for case in cases
            ],
            batch_size=1000,
        )
        start = self.mark()
        sends_before = self.redis.llen(instrument.SENDS_KEY)
        t0 = time.time()
        # The outage is over and every case's retry is due now: its message is in the queue.
        for case in cases:
            tasks.write_arrangement.apply_async((case.pk,))
        ids = [case.pk for case in cases]
        backlog = FinancedCase.objects.filter(pk__gte=min(ids), pk__lte=max(ids))  # bulk_create: one range
        deadline = time.monotonic() + 1200
        past = (CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED)
        drained = completed = None
        while completed is None:
            if time.monotonic() > deadline:
                raise RuntimeError("recovery did not drain")
            counts = survive_db_restart(lambda: dict(backlog.values_list("state").annotate(n=Count("pk"))))
            if drained is None and sum(counts.get(s, 0) for s in past) + counts.get(CaseState.NEEDS_ATTENTION, 0) >= count:
                drained = time.time()
            if counts.get(CaseState.COMPLETED, 0) + counts.get(CaseState.NEEDS_ATTENTION, 0) >= count:
                completed = time.time()
            time.sleep(0.25)
        end = self.mark()
        costs = self.phase_costs(start, end, count)
        limit_keys = {
            ratelimit.connection_key("pms", loc.pms_base_url, loc.pms_api_key): loc.code.upper() for loc in backlog_locations
        }
        arrivals, sends = defaultdict(list), defaultdict(list)
        for e in self.dx_log.between(start["dx"], end["dx"]):
            if e[1].startswith("R"):
                arrivals[e[1]].append(e[0])
        for raw in self.redis.lrange(instrument.SENDS_KEY, sends_before, -1):
            key, at = raw.decode().rsplit(" ", 1)
            if key in limit_keys:
                sends[limit_keys[key]].append(float(at))
        write_calls = {
            conn: sum(1 for at in times if at <= drained) for conn, times in arrivals.items()
        }
        n_per, period = (max(1, int(rate)), max(1, int(rate)) / rate)
        peak_sent = max(max_in_window(v, period) for v in sends.values()) if sends else 0
        peak_seen = max(max_in_window(v, period) for v in arrivals.values())
        peak_5s = max(max_in_window(v, 5 * period) for v in arrivals.values())
        shortest = max(write_calls.values()) / rate
        calls = sum(len(v) for v in arrivals.values())
        deferred = costs["counts"].get("outcome:financing.write_arrangement:rate_limited", 0) + costs["counts"].get(
            "outcome:financing.post_ledger_note:rate_limited", 0
        )
        attention = backlog.filter(state=CaseState.NEEDS_ATTENTION).count()
        cpu = costs["cpu"]
        busy = sum(v for k, v in cpu.items() if k != "driver")
        self.cases_total += count
        self.table.section(
            f"Recovery: {count:,} cases due after a 10-minute Dentrix outage, {len(backlog_locations)} connections "
            f"limited to {rate:g} requests/s, {len(self.workers)} worker processes "
            f"({' + '.join(str(len(w.rss()) - 1) for w in self.workers)} pool processes) sharing one limiter"
        )
        self.table.add(
            "backlog drained (every arrangement written and read back)", f"{drained - t0:.1f} s",
            f"shortest the limits allow: {shortest:.1f} s (busiest connection's calls / its rate); efficiency {shortest / (drained - t0):.0%}",
        )
        self.table.add(
            "  and every case completed (ledger note posted)", f"{completed - t0:.1f} s",
            f"{calls / count:.2f} partner calls per case; confirmations follow on the notify queue",
        )
        self.table.add(
            "highest request rate on one connection, as sent", f"{peak_sent} in any {period:g} s",
            f"limit {n_per} per {period:g} s, shared by {len(self.workers)} worker processes", "ok" if peak_sent <= n_per else "over",
        )
        self.table.add(
            "  as the partner saw it arrive", f"{peak_seen} in any {period:g} s",
            f"{peak_5s / 5:.1f}/s over 5 s: arrival times at the sandbox carry its own scheduling delays on a busy machine",
        )
        self.table.add(
            "steps re-scheduled by the limiter (no attempt spent)", f"{deferred:,.0f}",
            f"{attention} cases went to needs_attention", "ok" if attention == 0 else "CHECK",
        )
        self.table.add(
            "CPU per case (arrangement, read-back, note, 2 confirmations)", f"{busy / count * 1000:.0f} ms",
            ", ".join(f"{k} {v / count * 1000:.0f}" for k, v in cpu.items() if k != "driver")
            + f" (ms); processes busy {busy / ((end['time'] - start['time']) * (os.cpu_count() or 1)):.0%} of the machine",
        )

    def memory(self):
        self.table.section(f"Memory: worker resident set (KiB), from after the warm-up to the end of the run ({self.cases_total:,} cases)")
        for worker in self.workers:
            if worker.name not in self.rss_start:
                continue
            before, after = self.rss_start[worker.name], worker.rss()
            handled = ""
            self.table.add(
                f"{worker.name}: main + {len(after) - 1} pool processes", f"{sum(before.values()):,} → {sum(after.values()):,}",
                "per process: " + ", ".join(f"{before.get(pid, 0):,}→{kib:,}" for pid, kib in after.items()) + handled,
            )


# --- the bare script the overhead phase compares with ----------------------------------------------


_bare_tokens: dict[str, str] = {}


def bare_case(dentrix: requests.Session, carecredit: requests.Session, location: Location, patient_id: str, plan_id: str):
    """What Chairside does for one approved case, as plain HTTP calls in sequence."""
    pms, lender = location.pms_base_url, location.lender_base_url

    def dx(method, path, **kwargs):
        response = dentrix.request(method, pms + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def cc(method, path, **kwargs):
        token = _bare_tokens.get(lender)
        if token is None:
            token = carecredit.post(
                lender + "/v1/oauth2/token",
                data={"grant_type": "client_credentials", "client_id": "chairside-sandbox", "client_secret": "sandbox-secret"},
                timeout=10,
            ).json()["access_token"]
            _bare_tokens[lender] = token
        response = carecredit.request(method, lender + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    for _ in range(2):  # at capture, then again when the application goes out
        patient = dx("GET", f"/v1/patients/{patient_id}")
        plans = dx("GET", f"/v1/patients/{patient_id}/treatment-plans")
    plan = next(p for p in plans if p["treatment_plan_id"] == plan_id)
    application = cc("POST", "/v1/applications", json={
        "merchant_number": location.merchant_number, "reference": f"bare-{plan_id}", "requested_amount": plan["total"],
        "callback_url": "", "applicant": {k: patient[k] for k in ("first_name", "last_name", "birth_date", "phone", "email", "address")},
    })
    decision = cc("GET", f"/v1/applications/{application['application_id']}")
    assert decision["status"] == "APPROVED"
    dx("GET", f"/v1/accounts/{patient_id}/payment-agreements")
    total = Decimal(plan["total"])
    payment = max((total / 12).quantize(Decimal("0.01"), rounding=ROUND_CEILING), Decimal("30.00"))
    dx("POST", f"/v1/accounts/{patient_id}/payment-agreements", json={
        "agreement_date": time.strftime("%Y-%m-%d"), "interval": "monthly", "total_agreed_amount": str(total),
        "down_payment": "0.00", "payment_amount": str(payment), "number_of_payments": 12,
        "first_payment_due": (timezone.localdate() + timedelta(days=30)).isoformat(),
        "annual_finance_charge_pct": "0.00", "note": f"[bare:{plan_id}]",
    })
    dx("GET", f"/v1/accounts/{patient_id}/payment-agreements")
    dx("GET", f"/v1/patients/{patient_id}/ledger-notes")
    dx("POST", f"/v1/patients/{patient_id}/ledger-notes", json={"type": "account", "text": f"CareCredit approved [bare:{plan_id}]"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Chairside's speed and scale benchmark.")
    parser.add_argument("--quick", action="store_true", help="a tenth of every size: to try the benchmark out")
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes per worker process (2 per core)")
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--latency-rate", type=float, default=4.0, help="measured cases per second")
    parser.add_argument("--background-share", type=float, default=0.5, help="share of the measured throughput kept busy")
    parser.add_argument("--overhead", type=int, default=10)
    parser.add_argument("--partner-latency", type=float, default=0.1, help="seconds per partner call in the overhead's second pass (0: skip it)")
    parser.add_argument("--poll", type=int, default=10_000)
    parser.add_argument("--poll-merchants", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--backlog-connections", type=int, default=10)
    parser.add_argument("--backlog-rate", type=float, default=10.0)
    parser.add_argument("--recovery-workers", type=int, default=3)
    parser.add_argument("--recovery-concurrency", type=int, default=8, help="pool processes of the workers the recovery adds")
    parser.add_argument("--phases", default="throughput,latency,overhead,polling,recovery", help="which, in order")
    args = parser.parse_args(argv)
    if args.quick:
        for name in ("burst", "latency", "poll", "backlog"):
            setattr(args, name, max(20, getattr(args, name) // 10))
        args.overhead = 10
    bench = Bench(args)

    def interrupted(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    # Stopped from outside (Ctrl-C, a timeout, a closed pipe): still stop what it started.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(signum, interrupted)
    try:
        bench.run()
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
