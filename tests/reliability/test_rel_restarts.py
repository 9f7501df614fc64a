"""Promises 1 and 2 through broker and database restarts, and the sweeper that makes them
survivable: every case reaches its final state, none twice.

The Redis and PostgreSQL tests restart the real servers on this machine, so they run only
when the suite itself runs on them (the CI's first pass) and keep each outage to a few
seconds. Redis runs without persistence, as in CI: a restart loses every queued message,
which is the worst case for "nothing lost".
"""

import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from financing.models import CaseState, FinancedCase

from tests.reliability.harness import on_postgres, on_redis, posts, purge_broker, start_case, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

FINAL = {CaseState.COMPLETED}


def assert_each_written_once(sandboxes, cases):
    for case in cases:
        case.refresh_from_db()
        assert case.state == CaseState.COMPLETED, (case.reference, case.state, case.state_reason)
        assert len(sandboxes.agreements(case.guarantor_id)) == 1, case.reference
        assert len(sandboxes.ledger_notes(case.patient_id)) == 1, case.reference
        history = [h.state for h in case.history.order_by("history_date", "history_id")]
        assert history.count(CaseState.COMPLETED) == 1 and history.count(CaseState.ARRANGEMENT_WRITTEN) == 1
    assert len(posts(sandboxes, "/v1/accounts")) == len(cases)
    assert len(posts(sandboxes, "/v1/patients")) == len(cases)


def test_the_sweeper_redrives_a_case_whose_worker_died_and_whose_message_was_lost(celery_processes, sandboxes, location, api):
    case = start_case(api, sandboxes, location)  # no worker yet: the message waits in the broker
    purge_broker()  # ... and is lost
    lease_until = timezone.now() + timedelta(seconds=3)
    # As a worker that claimed the case and died would leave it.
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="dead-worker", lease_until=lease_until, step_attempts=1)
    processes = celery_processes()
    wait_for(lambda: FinancedCase.objects.get(pk=case.pk).state == CaseState.COMPLETED, 40, *processes.all_logs())
    case.refresh_from_db()
    assert case.application_sent_at > lease_until  # nobody stepped in while the lease was live
    assert "Task financing.redrive_stuck_cases" in processes.log.read_text()
    assert_each_written_once(sandboxes, [case])


@pytest.mark.skipif(not on_redis(), reason="restarts the Redis broker: runs only when CELERY_BROKER_URL is Redis")
def test_a_redis_restart_during_a_burst_loses_no_case_and_duplicates_none(celery_processes, sandboxes, location, api):
    assert shutil.which("redis-server") and shutil.which("redis-cli")
    processes = celery_processes()
    cases = [start_case(api, sandboxes, location, surname=f"Thompson{i}") for i in range(4)]
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True, timeout=10)
    try:
        # Cases keep arriving while the broker is away: accepted, kept, re-driven later.
        cases += [start_case(api, sandboxes, location, surname=f"Rivera{i}") for i in range(4)]
        time.sleep(3)
    finally:
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
             "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
            check=True, timeout=10,
        )
        wait_for(lambda: subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True).stdout.strip() == b"PONG", 15)
    wait_for(lambda: all(FinancedCase.objects.get(pk=c.pk).state in FINAL for c in cases), 90, *processes.all_logs())
    assert_each_written_once(sandboxes, cases)
    log = processes.log.read_text()
    assert "Connection to broker lost" in log or "Cannot connect to redis" in log


@pytest.mark.skipif(not on_postgres(), reason="restarts PostgreSQL: runs only when DATABASE_URL is PostgreSQL")
def test_a_postgresql_restart_mid_flow_loses_no_case_and_duplicates_none(celery_processes, sandboxes, location, api):
    [version] = [p.name for p in Path("/etc/postgresql").iterdir()][:1]
    processes = celery_processes()
    # Slow Dentrix a little so the restart lands while agreements are being written.
    sandboxes.dentrix_fault(method="*", path_prefix="/v1/accounts", mode="latency", latency_ms=700, count=12)
    cases = [start_case(api, sandboxes, location, surname=f"Thompson{i}") for i in range(6)]
    wait_for(lambda: FinancedCase.objects.filter(pk__in=[c.pk for c in cases], state=CaseState.APPROVED).exists(), 30, processes.log)
    for conn in connections.all():
        conn.close()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=60)
    for conn in connections.all():
        conn.close()  # ours died with the server; Django reconnects on the next query
    wait_for(lambda: all(FinancedCase.objects.get(pk=c.pk).state in FINAL for c in cases), 90, *processes.all_logs())
    assert_each_written_once(sandboxes, cases)
