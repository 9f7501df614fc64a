"""Promise 6: time bounds nest.

HTTP connect + read timeout < task soft limit < hard limit < broker visibility timeout; a
lease outlives three heartbeats (it is renewed while its task runs, so it need not outlive
the task); and no countdown or ETA in the code can reach the visibility timeout (Redis
would deliver such a message again while it still waits: celery#2481 and friends).
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings

from financing import services
from financing.models import CaseState, FinancedCase
from financing.ports import AmbiguousWriteError, TransientPartnerError
from core import leases

from tests.reliability.harness import FAST_WORKER_ENV

ROOT = Path(settings.BASE_DIR)
PACKAGES = ["config", "core", "financing", "partner_http", "carecredit_bridge", "dentrix_bridge", "twilio_bridge", "notifications"]

# Every place in the code that schedules a message for later, and what bounds its delay.
# A new countdown or eta fails this test until it is added here with its bound (and the
# bound is checked below).
REVIEWED_DELAYS = {
    ("core/queueing.py", "enqueue_on_commit"): "passes on its caller's countdown",
    ("financing/services/states.py", "enqueue_step"): "passes on its caller's countdown",
    ("financing/services/leases.py", "retry_later"): "min(RETRY_MAX_SECONDS, …), Retry-After and the settle time capped by it",
    ("financing/services/leases.py", "wait_for_slot"): "min(RETRY_MAX_SECONDS, …)",
    ("notifications/services.py", "_enqueue"): "passes on its caller's countdown",
    ("notifications/services.py", "_claim"): "what is left of the send lease, at most CASE_LEASE_SECONDS",
    ("financing/services/sweeps.py", "redrive"): "what is left of next_attempt_at: a backoff (RETRY_MAX_SECONDS) or a write's settle time (≤ RETRY_MAX_SECONDS)",
    ("notifications/services.py", "_after_error"): "min(RETRY_MAX_SECONDS, …)",
    ("financing/services/prescreen.py", "_next"): "passes on its caller's countdown (_later's)",
    ("financing/services/prescreen.py", "_later"): "min(RETRY_MAX_SECONDS, …): a backoff, a Retry-After, our limiter's wait",
    ("financing/services/refunds.py", "_queue_again"): "BUSY_RETRY_SECONDS (10 s), or a backoff, a Retry-After or a write's settle time, each capped at RETRY_MAX_SECONDS",
}


def nested(bounds: dict) -> list[str]:
    """The chain, as 'a < b' strings that failed (empty when all hold)."""
    chain = [
        ("PARTNER_CONNECT_TIMEOUT + PARTNER_READ_TIMEOUT", bounds["PARTNER_CONNECT_TIMEOUT"] + bounds["PARTNER_READ_TIMEOUT"]),
        ("CELERY_TASK_SOFT_TIME_LIMIT", bounds["CELERY_TASK_SOFT_TIME_LIMIT"]),
        ("CELERY_TASK_TIME_LIMIT", bounds["CELERY_TASK_TIME_LIMIT"]),
        ("CELERY_VISIBILITY_TIMEOUT", bounds["CELERY_VISIBILITY_TIMEOUT"]),
    ]
    failed = [f"{a} ({x}) < {b} ({y})" for (a, x), (b, y) in zip(chain, chain[1:]) if not x < y]
    # A lease survives two missed heartbeats; a message waiting out what is left of one
    # (a busy hand-off) is never held past the visibility timeout.
    lease, beat = bounds["CASE_LEASE_SECONDS"], bounds["LEASE_HEARTBEAT_SECONDS"]
    if not 3 * beat <= lease:
        failed.append(f"3 × LEASE_HEARTBEAT_SECONDS ({3 * beat}) <= CASE_LEASE_SECONDS ({lease})")
    if not lease + 1 < bounds["CELERY_VISIBILITY_TIMEOUT"]:
        failed.append(f"CASE_LEASE_SECONDS + 1 ({lease + 1}) < CELERY_VISIBILITY_TIMEOUT")
    return failed


def current_bounds() -> dict:
    names = [
        "PARTNER_CONNECT_TIMEOUT", "PARTNER_READ_TIMEOUT", "CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT",
        "CASE_LEASE_SECONDS", "LEASE_HEARTBEAT_SECONDS", "CELERY_VISIBILITY_TIMEOUT",
    ]
    return {name: float(getattr(settings, name)) for name in names}


def test_the_configured_time_bounds_nest():
    assert nested(current_bounds()) == []
    assert settings.RETRY_MAX_SECONDS < settings.CELERY_VISIBILITY_TIMEOUT
    assert settings.AMBIGUOUS_WRITE_SETTLE_SECONDS <= settings.RETRY_MAX_SECONDS
    assert leases.lease_seconds() == settings.CASE_LEASE_SECONDS
    # The values Celery actually runs with, not only the settings module's.
    conf = current_app.conf
    assert conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert conf.broker_transport_options["visibility_timeout"] == settings.CELERY_VISIBILITY_TIMEOUT
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert conf.task_ignore_result is True


BOUND_SETTINGS = [
    "PARTNER_CONNECT_TIMEOUT", "PARTNER_READ_TIMEOUT", "CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT",
    "CASE_LEASE_SECONDS", "LEASE_HEARTBEAT_SECONDS", "CELERY_VISIBILITY_TIMEOUT", "RETRY_MAX_SECONDS",
    "AMBIGUOUS_WRITE_SETTLE_SECONDS",
]
_RESOLVE = """
import json
from celery import current_app
from django.conf import settings
from core import leases
conf = current_app.conf
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in %r},
    "celery": {
        "soft": conf.task_soft_time_limit, "hard": conf.task_time_limit,
        "visibility": conf.broker_transport_options["visibility_timeout"],
    },
    "send_lease": leases.lease_seconds(),
}))
"""


def resolved_defaults(**env) -> dict:
    """The time bounds as a fresh process resolves them with none of them set (nor anything
    a test run sets): settings, the Celery app's configuration, the send lease."""
    dropped = ("DJANGO_", "CHAIRSIDE_TESTING", "CHAIRSIDE_FAULT", "CELERY_", "PARTNER_", "CASE_", "LEASE_", "RETRY_", "AMBIGUOUS_", "STEP_", "NOTIFY_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _RESOLVE % (BOUND_SETTINGS,)],
        env={**clean, **env}, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("broker", ["filesystem://", "redis://127.0.0.1:6379/0"])
def test_the_defaults_nest(broker):
    """What production gets when nobody sets a thing (on either broker: nothing connects)."""
    resolved = resolved_defaults(CELERY_BROKER_URL=broker)
    defaults = resolved["settings"]
    assert defaults == {
        "PARTNER_CONNECT_TIMEOUT": 3.05, "PARTNER_READ_TIMEOUT": 10.0, "CELERY_TASK_SOFT_TIME_LIMIT": 60,
        "CELERY_TASK_TIME_LIMIT": 90, "CASE_LEASE_SECONDS": 20, "LEASE_HEARTBEAT_SECONDS": 5.0,
        "CELERY_VISIBILITY_TIMEOUT": 3600, "RETRY_MAX_SECONDS": 300.0, "AMBIGUOUS_WRITE_SETTLE_SECONDS": 30.0,
    }
    assert nested({name: float(defaults[name]) for name in current_bounds()}) == []
    assert defaults["RETRY_MAX_SECONDS"] < defaults["CELERY_VISIBILITY_TIMEOUT"]
    assert defaults["AMBIGUOUS_WRITE_SETTLE_SECONDS"] <= defaults["RETRY_MAX_SECONDS"]
    assert resolved["send_lease"] == defaults["CASE_LEASE_SECONDS"]
    # After a crash elsewhere, a live worker hands the work back within lease + heartbeat:
    # the recovery bound the README promises (30 s) holds on any host.
    assert defaults["CASE_LEASE_SECONDS"] + defaults["LEASE_HEARTBEAT_SECONDS"] <= 25
    # The values Celery runs with, not only the settings module's.
    assert resolved["celery"] == {"soft": 60, "hard": 90, "visibility": 3600}


def test_the_reliability_tests_worker_bounds_nest_too():
    bounds = {name: float(FAST_WORKER_ENV[name]) for name in current_bounds() if name in FAST_WORKER_ENV}
    bounds["CELERY_VISIBILITY_TIMEOUT"] = float(settings.CELERY_VISIBILITY_TIMEOUT)
    assert nested(bounds) == []


def scheduling_calls():
    """(file, enclosing function, keyword, source of the value) for every countdown= / eta=."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for function in ast.walk(tree):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Call):
                        for keyword in node.keywords:
                            if keyword.arg in ("countdown", "eta"):
                                relative = str(path.relative_to(ROOT))
                                found.append((relative, function.name, keyword.arg, ast.unparse(keyword.value)))
    return found


def test_every_countdown_and_eta_in_the_code_is_reviewed_and_below_the_visibility_timeout():
    calls = scheduling_calls()
    assert calls, "the scan found nothing: is it looking in the right place?"
    for path, function, keyword, value in calls:
        try:
            constant = float(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            assert (path, function) in REVIEWED_DELAYS, (
                f"{path}:{function} schedules a message with {keyword}={value}: add it to REVIEWED_DELAYS "
                "with what keeps it below the visibility timeout"
            )
        else:
            assert constant < settings.CELERY_VISIBILITY_TIMEOUT, (path, function, value)
        assert keyword == "countdown", f"{path}:{function} uses eta=: an absolute time can be anything"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error",
    [
        TransientPartnerError("down", retry_after=10**9),  # a partner asking for a very long wait
        AmbiguousWriteError("lost answer"),
        TransientPartnerError("down"),
    ],
)
def test_the_longest_backoff_stays_below_the_visibility_timeout(error, location, tasks, settings):
    settings.STEP_MAX_ATTEMPTS = 1000
    settings.AMBIGUOUS_WRITE_SETTLE_SECONDS = 10**9
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id="p1", promotion="deferred_12", state=CaseState.APPROVED)
    FinancedCase.objects.filter(pk=case.pk).update(step_attempts=998)  # the 999th attempt: 2·2^998 s uncapped
    claimed, token = services.claim(case.pk, CaseState.APPROVED)
    assert services.retry_later(claimed, token, error) == "retry"
    [step] = tasks.queue
    assert step.countdown <= settings.RETRY_MAX_SECONDS < settings.CELERY_VISIBILITY_TIMEOUT
