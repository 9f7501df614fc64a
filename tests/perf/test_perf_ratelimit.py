"""The shared per-connection rate limit (financing/ratelimit.py): the window arithmetic, the
in-memory and the Redis limiters, the limit holding across two processes, the hook in the
partner clients, and a rate-limited step that spends no attempt."""

import multiprocessing
import os
import time
import uuid

import pytest
import redis
import requests

from dentrix_bridge.client import DentrixConnectorClient
from financing import partners, ratelimit, services
from financing.models import CaseState, FinancedCase
from financing.ports import RateLimited

REDIS_URL = os.environ.get("CHAIRSIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_url(settings) -> str:
    url = settings.PARTNER_RATE_LIMIT_URL or REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError):
        pytest.skip(f"no Redis at {url}")
    return url


@pytest.fixture
def limiter_settings(settings):
    settings.PARTNER_RATE_LIMITS = True
    settings.PARTNER_RATE_LIMIT_MAX_WAIT = 2.0
    ratelimit.reset_local_state()
    yield settings
    ratelimit.reset_local_state()


def test_rates_become_request_windows():
    assert ratelimit.window(5) == (5, 1.0)
    assert ratelimit.window(20) == (20, 1.0)
    assert ratelimit.window(1) == (1, 1.0)  # Open Dental: one per second per customer key
    assert ratelimit.window(0.5) == (1, 2.0)
    assert ratelimit.window(2.5) == (2, 0.8)
    with pytest.raises(ValueError):
        ratelimit.window(0)


def test_connection_keys_never_hold_the_credential():
    key = ratelimit.connection_key("pms", "https://connector.example", "secret-api-key")
    assert "secret-api-key" not in key and key.startswith("chairside:rate:pms:")
    assert key == ratelimit.connection_key("pms", "https://connector.example", "secret-api-key")
    assert key != ratelimit.connection_key("pms", "https://connector.example", "another-key")


def test_local_limiter_lets_a_burst_through_then_says_when_a_slot_frees():
    limiter = ratelimit.LocalLimiter()
    assert [limiter.take("k", 3, 1.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # N back to back
    wait = limiter.take("k", 3, 1.0)
    assert 0.9 < wait <= 1.0  # the 4th must wait for the first to leave the window
    # Asking again takes nothing: the answer stays the same.
    assert limiter.take("k", 3, 1.0) == pytest.approx(wait, abs=0.05)
    assert limiter.take("other", 3, 1.0) == 0.0  # connections are independent


def test_acquire_sleeps_for_a_slot_within_max_wait(limiter_settings):
    limiter_settings.PARTNER_RATE_LIMIT_URL = ""
    key = f"test:{uuid.uuid4().hex}"
    started = time.monotonic()
    for _ in range(5):
        ratelimit.acquire(key, 10, max_wait=2.0)  # within the first burst of 10: no wait
    assert time.monotonic() - started < 0.1
    ratelimit.acquire(key, 2, max_wait=2.0)  # a 2/s view of the same key: wait for the window
    assert time.monotonic() - started >= 0.9


def test_acquire_raises_rate_limited_with_retry_after_and_sends_nothing(limiter_settings):
    limiter_settings.PARTNER_RATE_LIMIT_URL = ""
    key = f"test:{uuid.uuid4().hex}"
    ratelimit.acquire(key, 0.1)  # one request per 10 s: the first goes at once
    with pytest.raises(RateLimited) as refused:
        ratelimit.acquire(key, 0.1)
    assert 9 < refused.value.retry_after <= 10 * (1 + ratelimit.GUARD)
    assert refused.value.status is None  # it never reached the partner


def test_redis_limiter_follows_the_same_rule(limiter_settings):
    limiter = ratelimit.RedisLimiter(redis_url(limiter_settings))
    key = f"chairside:rate:test:{uuid.uuid4().hex}"
    assert [limiter.take(key, 2, 1.0) for _ in range(2)] == [0.0, 0.0]
    wait = limiter.take(key, 2, 1.0)
    assert 0.9 < wait <= 1.0
    assert limiter.take(key, 2, 1.0) == pytest.approx(wait, abs=0.05)  # nothing taken


def test_redis_down_falls_back_to_pacing_in_memory(limiter_settings, caplog):
    limiter = ratelimit.RedisLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    assert limiter.take("k", 1, 1.0) == 0.0
    assert limiter.take("k", 1, 1.0) > 0.9  # still limited, per process
    assert "limiting per process" in caplog.text


def _hammer(url, key, seconds, out):
    """A second process: send as fast as the limit lets it for `seconds`; report each send."""
    from django.conf import settings

    settings.PARTNER_RATE_LIMIT_URL = url
    ratelimit.reset_local_state()
    deadline = time.time() + seconds
    sent = []
    while time.time() < deadline:
        ratelimit.acquire(key, 10, max_wait=5.0)
        sent.append(time.time())
        time.sleep(0.01)  # a real caller reads the answer before it sends again
    out.put(sent)


def test_the_limit_holds_across_two_processes(limiter_settings):
    """Two processes hammering one connection at 10/s share 10/s between them.

    Each alone may take 10 per second plus its first burst of 10; if the limit were per
    process the two would take about twice as many.
    """
    url = redis_url(limiter_settings)
    key = f"chairside:rate:test:{uuid.uuid4().hex}"
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    seconds = 2.0
    processes = [context.Process(target=_hammer, args=(url, key, seconds, out)) for _ in range(2)]
    for process in processes:
        process.start()
    results = [out.get(timeout=20) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    both = sorted(results[0] + results[1])
    assert len(results[0]) > 3 and len(results[1]) > 3  # both got a share
    # 10 per second over the span of the sends (the two processes may start apart), plus the
    # first burst of 10; a per-process limit would let each take about that many.
    span = both[-1] - both[0]
    assert len(both) <= 10 * span + 10 + 1
    assert len(both) >= 10 * min(span, seconds) * 0.7
    # Never 11 sends (from either process) within one second. A send is noted a moment after
    # its slot was taken, hence 10 ms of slack.
    assert all(later - earlier >= 0.99 for earlier, later in zip(both, both[10:]))


def test_the_clients_pace_every_request_through_the_hook(sandboxes):
    calls = []
    client = DentrixConnectorClient(sandboxes.dentrix_url, "sandbox", before_request=lambda: calls.append(1))
    client.get_patient("1001")
    client.list_payment_agreements("1001")
    assert len(calls) == 2

    def refuse():
        raise RateLimited("paced", retry_after=3.0)

    before = len(sandboxes.dentrix_requests())
    with pytest.raises(RateLimited):
        DentrixConnectorClient(sandboxes.dentrix_url, "sandbox", before_request=refuse).get_patient("1001")
    assert len(sandboxes.dentrix_requests()) == before  # nothing was sent


@pytest.mark.django_db
def test_partners_reuse_a_client_per_location_and_pace_it(location, limiter_settings):
    first = partners.pms_for(location)
    assert partners.pms_for(location) is first  # kept: its connections are reused
    assert first.before_request is not None
    location.pms_requests_per_second = 2
    assert partners.pms_for(location) is not first  # a changed rate builds a new client
    limiter_settings.PARTNER_RATE_LIMITS = False
    assert partners.pms_for(location).before_request is None


@pytest.mark.django_db(transaction=True)  # on_commit must fire: that is how steps are enqueued
def test_a_rate_limited_step_is_rescheduled_without_spending_an_attempt(sandboxes, location, coordinator, tasks, limiter_settings):
    limiter_settings.PARTNER_RATE_LIMIT_URL = ""
    location.pms_requests_per_second = "0.01"  # one request per 100 s
    location.save()
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator
    )  # the first PMS call passes, the second is paced: intake accepts the case anyway
    assert tasks.run_next() == "rate_limited"
    case = FinancedCase.objects.get(pk=case.pk)
    assert case.state == CaseState.CAPTURED
    assert case.step_attempts == 0  # the claim's attempt was given back
    assert case.last_error == ""  # waiting for a slot is not an error
    assert case.next_attempt_at is not None
    retry = tasks.queue[-1]
    assert retry.name == "financing.send_application" and retry.countdown >= 90
    # Many more of those never push the case towards needs_attention.
    for _ in range(limiter_settings.STEP_MAX_ATTEMPTS + 2):
        FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=None)
        assert services.send_application(case.pk) == "rate_limited"
    assert FinancedCase.objects.get(pk=case.pk).state == CaseState.CAPTURED
    assert requests.get(f"{sandboxes.carecredit_url}/_sandbox/applications", timeout=5).json() == []


@pytest.mark.django_db(transaction=True)
def test_a_note_held_back_by_the_limiter_is_still_unsent_and_needs_no_lookup(sandboxes, location, coordinator, tasks, limiter_settings, monkeypatch):
    patient = sandboxes.new_patient("Thompson")
    services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.run_next()  # send_application
    case = FinancedCase.objects.get()
    assert services.refresh_decision(case.pk) == "approved"
    assert tasks.run_next() == "written"
    client = partners.pms_for(location)

    def paced_post(*args, **kwargs):
        raise RateLimited("paced", retry_after=1.0)

    monkeypatch.setattr(client, "create_ledger_note", paced_post)
    assert tasks.run_next() == "rate_limited"
    note = FinancedCase.objects.get(pk=case.pk).ledger_note
    assert (note.write_status, note.write_attempts) == ("pending", 0)
    monkeypatch.undo()
    before = len(sandboxes.dentrix_requests("GET", f"/v1/patients/{case.patient_id}/ledger-notes"))
    FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=None)
    assert services.post_ledger_note(case.pk) == "completed"
    assert len(sandboxes.dentrix_requests("GET", f"/v1/patients/{case.patient_id}/ledger-notes")) == before
    assert len(sandboxes.ledger_notes(case.patient_id)) == 1
