"""The CareCredit client against the CareCredit sandbox, over real HTTP."""

import json
import logging
import socket
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests

from carecredit_bridge.client import RAW_STATUS_TO_DECISION, CareCreditClient, clear_token_cache
from financing.ports import (
    Address,
    AmbiguousWriteError,
    DecisionStatus,
    NotFoundError,
    Offer,
    PermanentPartnerError,
    PromotionKind,
    TransientPartnerError,
)

D = Decimal
DEFERRED_CODES = ["deferred_6", "deferred_12", "deferred_18", "deferred_24"]
REDUCED_CODES = ["reduced_apr_24", "reduced_apr_36", "reduced_apr_48", "reduced_apr_60"]


def settled(client, application_id, wait_until, *, leaving=DecisionStatus.IN_PROGRESS):
    """Poll until the decision's status is no longer `leaving`."""
    return wait_until(
        lambda: (decision := client.get_decision(application_id)).status != leaving and decision
    )


def request_log(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()


def add_fault(sandbox, **fault):
    response = requests.post(f"{sandbox.base_url}/_sandbox/faults", json=fault, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def sandbox_applications(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/applications", timeout=5).json()


def assert_no_phi(text, canary):
    for value in canary.values():
        assert value not in text


# --- personas, end to end ---------------------------------------------------------------


def test_approve_persona_is_in_progress_then_approved_for_the_requested_amount(cc_client, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("Smith", "1234.56"))

    assert application.application_id.startswith("app_")
    assert application.apply_url.endswith(f"/apply/{application.application_id}")
    first = cc_client.get_decision(application.application_id)
    assert (first.status, first.raw_status, first.approved_amount, first.offers) == (
        DecisionStatus.IN_PROGRESS, "APPLICATION_SENT", None, ()
    )

    decision = settled(cc_client, application.application_id, wait_until)
    assert decision.status == DecisionStatus.APPROVED
    assert decision.raw_status == "APPROVED"
    assert decision.requested_amount == D("1234.56")
    assert decision.approved_amount == D("1234.56")
    assert decision.credit_limit == D("1500.00")
    assert [offer.code for offer in decision.offers] == DEFERRED_CODES + REDUCED_CODES
    assert decision.decided_at.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - decision.decided_at).total_seconds()) < 5
    for amount in (decision.requested_amount, decision.approved_amount, decision.credit_limit):
        assert isinstance(amount, Decimal)


def test_partial_persona_is_approved_for_60_percent(cc_client, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("Partialson", "2500.00"))

    decision = settled(cc_client, application.application_id, wait_until)

    assert decision.status == DecisionStatus.APPROVED
    assert decision.requested_amount == D("2500.00")
    assert decision.approved_amount == D("1500.00")
    assert decision.credit_limit == D("1500.00")
    assert [offer.code for offer in decision.offers] == DEFERRED_CODES + REDUCED_CODES


def test_partial_amount_is_rounded_to_the_cent_and_offers_follow_the_approved_amount(
    cc_client, new_application_request, wait_until
):
    # 60% of 1234.56 is 740.736: approved 740.74, below the $1,000 reduced-APR minimum.
    application = cc_client.create_application(new_application_request("PARTIAL", "1234.56"))

    decision = settled(cc_client, application.application_id, wait_until)

    assert decision.approved_amount == D("740.74")
    assert decision.credit_limit == D("1000.00")
    assert [offer.code for offer in decision.offers] == DEFERRED_CODES


def test_decline_persona_is_declined_case_insensitively(cc_client, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("declinedale", "900.00"))

    decision = settled(cc_client, application.application_id, wait_until)

    assert (decision.status, decision.raw_status) == (DecisionStatus.DECLINED, "DECLINED")
    assert (decision.approved_amount, decision.credit_limit, decision.offers) == (None, None, ())
    assert decision.requested_amount == D("900.00")
    assert decision.decided_at is not None


def test_pending_persona_is_pending_then_approved(cc_client, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("Pendington", "800.00"))

    pending = settled(cc_client, application.application_id, wait_until)
    assert (pending.status, pending.raw_status, pending.approved_amount, pending.decided_at) == (
        DecisionStatus.PENDING, "PENDING", None, None
    )

    approved = settled(cc_client, application.application_id, wait_until, leaving=DecisionStatus.PENDING)
    assert approved.status == DecisionStatus.APPROVED
    assert approved.approved_amount == D("800.00")
    assert approved.credit_limit == D("1000.00")
    assert [offer.code for offer in approved.offers] == DEFERRED_CODES


def test_refer_persona_stays_referred(cc_client, cc_sandbox, new_application_request, wait_until, advance_clock):
    application = cc_client.create_application(new_application_request("Referral", "1500.00"))

    decision = settled(cc_client, application.application_id, wait_until)
    assert (decision.status, decision.raw_status, decision.approved_amount) == (DecisionStatus.REFERRED, "REFERRED", None)

    advance_clock(cc_sandbox, 3600)  # far past pending_delay: a referral does not resolve by itself
    assert cc_client.get_decision(application.application_id).status == DecisionStatus.REFERRED


def test_expire_persona_is_never_decided(cc_client, cc_sandbox, new_application_request, advance_clock):
    application = cc_client.create_application(new_application_request("Expireson", "1500.00"))

    advance_clock(cc_sandbox, 3600)  # decision_delay + pending_delay have both passed, long ago
    decision = cc_client.get_decision(application.application_id)
    assert (decision.status, decision.raw_status, decision.decided_at) == (DecisionStatus.IN_PROGRESS, "APPLICATION_SENT", None)


def test_unknown_raw_status_maps_to_unknown_and_keeps_the_raw_value(cc_client, cc_sandbox, new_application_request):
    application = cc_client.create_application(new_application_request("Smith"))
    response = requests.post(
        f"{cc_sandbox.base_url}/_sandbox/applications/{application.application_id}/status",
        json={"status": "ON_HOLD_FOR_REVIEW"}, timeout=5,
    )
    assert response.status_code == 200

    decision = cc_client.get_decision(application.application_id)

    assert (decision.status, decision.raw_status) == (DecisionStatus.UNKNOWN, "ON_HOLD_FOR_REVIEW")
    assert (decision.approved_amount, decision.credit_limit, decision.offers) == (None, None, ())


def test_forced_expired_status_maps_to_expired(cc_client, cc_sandbox, new_application_request):
    application = cc_client.create_application(new_application_request("Expireson"))
    cc_sandbox.app.force_status(application.application_id, "EXPIRED")

    assert cc_client.get_decision(application.application_id).status == DecisionStatus.EXPIRED


def test_raw_status_table_is_exact_and_case_sensitive():
    assert RAW_STATUS_TO_DECISION == {
        "APPLICATION_SENT": DecisionStatus.IN_PROGRESS,
        "PENDING": DecisionStatus.PENDING,
        "REFERRED": DecisionStatus.REFERRED,
        "APPROVED": DecisionStatus.APPROVED,
        "DECLINED": DecisionStatus.DECLINED,
        "EXPIRED": DecisionStatus.EXPIRED,
    }
    assert "approved" not in RAW_STATUS_TO_DECISION


# --- promotions ------------------------------------------------------------------------------


def test_no_promotions_below_200(cc_client):
    assert cc_client.list_promotions("5348120000000001", D("199.99")) == []


def test_200_qualifies_for_the_four_deferred_interest_promotions_only(cc_client):
    offers = cc_client.list_promotions("5348120000000001", D("200.00"))

    assert offers == [
        Offer(code=f"deferred_{months}", kind=PromotionKind.DEFERRED, months=months, apr=D("0.00"), min_amount=D("200.00"))
        for months in (6, 12, 18, 24)
    ]
    assert [offer.code for offer in cc_client.list_promotions("5348120000000001", D("999.99"))] == DEFERRED_CODES


def test_1000_adds_the_four_reduced_apr_promotions_at_17_90(cc_client):
    offers = cc_client.list_promotions("5348120000000001", D("1000.00"))

    assert [offer.code for offer in offers] == DEFERRED_CODES + REDUCED_CODES
    assert offers[4:] == [
        Offer(code=f"reduced_apr_{months}", kind=PromotionKind.REDUCED_APR, months=months, apr=D("17.90"), min_amount=D("1000.00"))
        for months in (24, 36, 48, 60)
    ]


def test_reduced_apr_follows_the_sandbox_configuration(cc_client, cc_sandbox):
    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"apr": "14.90"}, timeout=5).raise_for_status()

    offers = cc_client.list_promotions("5348120000000001", D("5000.00"))

    assert {offer.apr for offer in offers if offer.kind == PromotionKind.REDUCED_APR} == {D("14.90")}


# --- OAuth2 token -----------------------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_clients_of_the_same_account(cc_client, cc_sandbox, new_application_request):
    application = cc_client.create_application(new_application_request("Smith"))
    cc_client.get_decision(application.application_id)
    cc_client.list_promotions("5348120000000001", D("500.00"))
    config = cc_sandbox.app.config
    another_client = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret)
    another_client.get_decision(application.application_id)

    log = request_log(cc_sandbox)
    assert [entry["path"] for entry in log if entry["path"] == "/v1/oauth2/token"] == ["/v1/oauth2/token"]
    assert len(log) == 5
    assert all(entry["status"] in (200, 201) for entry in log)


def test_revoked_token_is_refreshed_exactly_once_and_the_call_retried(cc_client, cc_sandbox):
    cc_client.list_promotions("5348120000000001", D("500.00"))
    requests.post(f"{cc_sandbox.base_url}/_sandbox/revoke-tokens", timeout=5).raise_for_status()

    offers = cc_client.list_promotions("5348120000000001", D("500.00"))

    assert len(offers) == 4
    assert [(entry["method"], entry["path"], entry["status"]) for entry in request_log(cc_sandbox)] == [
        ("POST", "/v1/oauth2/token", 200),
        ("GET", "/v1/promotions", 200),
        ("GET", "/v1/promotions", 401),
        ("POST", "/v1/oauth2/token", 200),
        ("GET", "/v1/promotions", 200),
    ]


def test_a_second_401_after_refresh_is_permanent(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="GET", path_prefix="/v1/promotions", mode="error", status=401, count=2)

    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.list_promotions("5348120000000001", D("500.00"))

    assert excinfo.value.status == 401
    assert "client id and secret" in str(excinfo.value)
    statuses = [(entry["path"], entry["status"]) for entry in request_log(cc_sandbox)]
    assert statuses == [
        ("/v1/oauth2/token", 200), ("/v1/promotions", 401), ("/v1/oauth2/token", 200), ("/v1/promotions", 401),
    ]


def test_wrong_client_secret_is_permanent_and_never_shown(cc_sandbox):
    client = CareCreditClient(cc_sandbox.base_url, cc_sandbox.app.config.client_id, "not-the-secret")

    with pytest.raises(PermanentPartnerError) as excinfo:
        client.list_promotions("5348120000000001", D("500.00"))

    assert excinfo.value.status == 401
    assert "invalid_client" in str(excinfo.value)
    assert "not-the-secret" not in str(excinfo.value) + repr(client)


# --- failures ---------------------------------------------------------------------------------


def test_503_with_retry_after_is_transient_with_retry_after(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="GET", path_prefix="/v1/applications", mode="error", status=503, retry_after=2)

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.get_decision("app_0000")

    error = excinfo.value
    assert type(error) is TransientPartnerError
    assert (error.status, error.retry_after) == (503, 2.0)
    assert str(error) == "CareCredit is unavailable (HTTP 503): injected_fault; it asked us to retry in 2 s"


def test_503_on_create_is_ambiguous_and_the_sandbox_did_no_work(cc_client, cc_sandbox, new_application_request):
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/applications", mode="error", status=503, retry_after=2)

    with pytest.raises(AmbiguousWriteError) as excinfo:
        cc_client.create_application(new_application_request("Smith"))

    assert (excinfo.value.status, excinfo.value.retry_after) == (503, 2.0)
    assert sandbox_applications(cc_sandbox) == []


def test_429_is_transient_and_not_ambiguous_even_for_a_create(cc_client, cc_sandbox, new_application_request):
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/applications", mode="error", status=429, retry_after=7)

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.create_application(new_application_request("Smith"))

    assert type(excinfo.value) is TransientPartnerError
    assert (excinfo.value.status, excinfo.value.retry_after) == (429, 7.0)


def test_read_timeout_is_transient(cc_sandbox, wait_until):
    config = cc_sandbox.app.config
    client = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, read_timeout=0.3)
    add_fault(cc_sandbox, method="GET", path_prefix="/v1/promotions", mode="timeout", latency_ms=700)

    started = time.monotonic()
    with pytest.raises(TransientPartnerError) as excinfo:
        client.list_promotions("5348120000000001", D("500.00"))

    assert time.monotonic() - started < 0.65
    assert type(excinfo.value) is TransientPartnerError
    assert str(excinfo.value) == "CareCredit did not answer within 0.3 s (read timeout)"
    # Let the slow request finish on the server so it cannot spill into the next test.
    wait_until(lambda: any(entry["fault"] == "timeout" for entry in request_log(cc_sandbox)))


def test_read_timeout_on_create_is_ambiguous_and_the_application_appears_later(
    cc_sandbox, new_application_request, wait_until, canary
):
    config = cc_sandbox.app.config
    client = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, read_timeout=0.3)
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/applications", mode="timeout", latency_ms=600)

    with pytest.raises(AmbiguousWriteError) as excinfo:
        client.create_application(new_application_request("Smith", reference="case-timeout"))

    assert str(excinfo.value) == (
        "CareCredit did not answer within 0.3 s (read timeout); the application "
        "may or may not have been saved: look it up before writing again"
    )
    assert_no_phi(str(excinfo.value), canary)
    created = wait_until(lambda: sandbox_applications(cc_sandbox))
    assert [application["reference"] for application in created] == ["case-timeout"]


def test_latency_fault_below_the_read_timeout_just_slows_the_call(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="GET", path_prefix="/v1/promotions", mode="latency", latency_ms=200)

    started = time.monotonic()
    assert len(cc_client.list_promotions("5348120000000001", D("500.00"))) == 4
    assert time.monotonic() - started >= 0.2


def test_connection_refused_is_transient_and_not_ambiguous_even_for_a_create(new_application_request):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = CareCreditClient(f"http://127.0.0.1:{closed_port}", "chairside-sandbox", "sandbox-secret")

    with pytest.raises(TransientPartnerError) as excinfo:
        client.create_application(new_application_request("Smith"))

    assert type(excinfo.value) is TransientPartnerError
    assert str(excinfo.value) == "CareCredit could not be reached (connection refused or unknown host)"


def test_dropped_create_is_ambiguous_and_the_retry_returns_the_same_application(
    cc_client, cc_sandbox, new_application_request, caplog, canary
):
    caplog.set_level(logging.DEBUG)
    request = new_application_request("Smith", "1800.00", reference="case-dropped")
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/applications", mode="drop")

    with pytest.raises(AmbiguousWriteError) as excinfo:
        cc_client.create_application(request)

    assert str(excinfo.value) == (
        "CareCredit closed the connection without answering; the application "
        "may or may not have been saved: look it up before writing again"
    )
    created = sandbox_applications(cc_sandbox)
    assert [(a["reference"], a["requested_amount"]) for a in created] == [("case-dropped", "1800.00")]

    retried = cc_client.create_application(request)

    assert retried.application_id == created[0]["application_id"]
    assert len(sandbox_applications(cc_sandbox)) == 1
    creates = [(e["status"], e["fault"]) for e in request_log(cc_sandbox) if e["path"] == "/v1/applications"]
    assert creates == [(None, "drop"), (200, None)]
    assert_no_phi(caplog.text, canary)


def test_dropped_read_is_transient_not_ambiguous(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="GET", path_prefix="/v1/promotions", mode="drop")

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.list_promotions("5348120000000001", D("500.00"))

    assert type(excinfo.value) is TransientPartnerError


def test_idempotency_key_reused_with_a_different_request_is_permanent(cc_client, cc_sandbox, new_application_request):
    cc_client.create_application(new_application_request("Smith", "1000.00", reference="case-7"))

    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.create_application(new_application_request("Smith", "1200.00", reference="case-7"))

    assert excinfo.value.status == 409
    assert "idempotency_key_reused" in str(excinfo.value)
    assert len(sandbox_applications(cc_sandbox)) == 1


def test_validation_errors_are_permanent_with_field_messages_and_no_phi(
    cc_client, cc_sandbox, new_application_request, caplog, canary
):
    caplog.set_level(logging.DEBUG)
    request = new_application_request(
        "Smith", "0.00",
        address=Address(line1=canary["line1"], city=canary["city"], state="Illinois", zip="6256"),
        email="zelda-at-example.com",
    )

    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.create_application(request)

    error = excinfo.value
    assert type(error) is PermanentPartnerError
    assert error.status == 400
    assert error.fields == {
        "requested_amount": "must be greater than 0.00",
        "applicant.email": "must be an email address",
        "applicant.address.state": "must be a 2-letter state code",
        "applicant.address.zip": "must be 5 digits",
    }
    assert str(error) == (
        "CareCredit rejected the application: requested_amount: must be greater than 0.00; "
        "applicant.email: must be an email address; applicant.address.state: must be a 2-letter state code; "
        "applicant.address.zip: must be 5 digits"
    )
    for text in (str(error), repr(error), json.dumps(error.fields), caplog.text):
        assert_no_phi(text, canary)
        assert "zelda-at-example.com" not in text and "Illinois" not in text and "6256" not in text
    assert sandbox_applications(cc_sandbox) == []


def test_unknown_application_is_not_found(cc_client):
    with pytest.raises(NotFoundError) as excinfo:
        cc_client.get_decision("app_doesnotexist")

    assert excinfo.value.status == 404
    assert excinfo.value.permanent is True
    assert str(excinfo.value) == "CareCredit could not find application app_doesnotexist (HTTP 404): not_found"


def test_money_must_be_decimal_whole_cents_and_nothing_is_sent_otherwise(cc_client, cc_sandbox):
    with pytest.raises(TypeError):
        cc_client.list_promotions("5348120000000001", 500.0)
    with pytest.raises(ValueError):
        cc_client.list_promotions("5348120000000001", D("500.005"))

    assert request_log(cc_sandbox) == []


def test_requested_amount_is_sent_as_a_two_decimal_string(cc_client, new_application_request):
    application = cc_client.create_application(new_application_request("Smith", "1234"))

    assert cc_client.get_decision(application.application_id).requested_amount == D("1234.00")


# --- wire-format edge cases (canned responses, no server) ---------------------------------------


class CannedSession:
    """Answers every request from a table of (method, path) -> (status, JSON text)."""

    def __init__(self, routes):
        self.routes = routes

    def request(self, method, url, **kwargs):
        path = requests.utils.urlparse(url).path
        status, text = self.routes[(method, path)]
        response = requests.Response()
        response.status_code = status
        response._content = text.encode()
        response.headers["Content-Type"] = "application/json"
        response.url = url
        return response


def canned_client(decision_json):
    clear_token_cache()
    session = CannedSession({
        ("POST", "/v1/oauth2/token"): (200, '{"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}'),
        ("GET", "/v1/applications/app_1"): (200, decision_json),
    })
    return CareCreditClient("https://carecredit.invalid", "canned", "secret", session=session)


def test_unknown_and_malformed_promotions_are_skipped_and_json_numbers_become_decimals():
    client = canned_client("""{
        "application_id": "app_1", "status": "APPROVED", "requested_amount": 1000.10,
        "approved_amount": "1000.10", "credit_limit": "1500.00", "decided_at": "2026-01-02T03:04:05Z",
        "promotions": [
            {"code": "EP12", "type": "EQUAL_PAY", "months": 12, "apr": "0.00", "min_purchase": "200.00"},
            {"code": "DI12", "type": "DEFERRED_INTEREST", "months": 12, "apr": "0.00", "min_purchase": "200.00"},
            {"code": "RA36", "type": "REDUCED_APR", "months": 36, "apr": "17.90", "min_purchase": "1000.00"},
            {"code": "RA??", "type": "REDUCED_APR", "months": "soon", "apr": "17.90", "min_purchase": "1000.00"},
            "not a promotion"
        ]
    }""")

    decision = client.get_decision("app_1")

    assert decision.requested_amount == D("1000.10") and isinstance(decision.requested_amount, Decimal)
    assert decision.offers == (
        Offer(code="deferred_12", kind=PromotionKind.DEFERRED, months=12, apr=D("0.00"), min_amount=D("200.00")),
        Offer(code="reduced_apr_36", kind=PromotionKind.REDUCED_APR, months=36, apr=D("17.90"), min_amount=D("1000.00")),
    )
    assert decision.decided_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    clear_token_cache()


def test_unreadable_decision_is_transient_and_another_applications_decision_is_refused():
    with pytest.raises(TransientPartnerError, match=r"could not be read \(requested_amount\)"):
        canned_client('{"application_id": "app_1", "status": "APPROVED", "requested_amount": "12.345"}').get_decision("app_1")
    with pytest.raises(TransientPartnerError, match=r"^CareCredit sent an answer that is not JSON \(HTTP 200\)$"):
        canned_client("<html>proxy error</html>").get_decision("app_1")
    with pytest.raises(PermanentPartnerError, match="with application app_2"):
        canned_client('{"application_id": "app_2", "status": "APPROVED", "requested_amount": "1.00"}').get_decision("app_1")
    clear_token_cache()
