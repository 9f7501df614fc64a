"""The CareCredit client's Quickscreen (prescreen) and cardholder confirmation, against the
CareCredit sandbox over real HTTP, plus canned answers for the wire's odd cases.

Why a failed prescreen is transient and never ambiguous: a Quickscreen is a soft check. It
creates nothing at CareCredit that Chairside would have to find or avoid duplicating (no id
comes back, nothing is held), it leaves the applicants' credit untouched, and the same batch
on the same day gets the same answer. So a timeout, a dropped connection or a 5xx after the
batch went out is "send the batch again", not "look up before writing again".
"""

import json
import logging
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from carecredit_bridge.client import (
    PRESCREEN_MAX_BATCH,
    RAW_CONFIRMATION_TO_DECISION,
    RAW_PRESCREEN_TO_OUTCOME,
    CareCreditClient,
    clear_token_cache,
)
from financing.ports import (
    Address,
    AmbiguousWriteError,
    CardholderRequest,
    DecisionStatus,
    NotFoundError,
    PermanentPartnerError,
    PrescreenApplicant,
    PrescreenOutcome,
    PrescreenRequest,
    PrescreenResult,
    RateLimited,
    TransientPartnerError,
)

D = Decimal
MERCHANT = "5348120000000001"
ALL_CODES = [f"deferred_{m}" for m in (6, 12, 18, 24)] + [f"reduced_apr_{m}" for m in (24, 36, 48, 60)]


def request_log(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()


def add_fault(sandbox, **fault):
    response = requests.post(f"{sandbox.base_url}/_sandbox/faults", json=fault, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def set_config(sandbox, **settings):
    requests.put(f"{sandbox.base_url}/_sandbox/config", json=settings, timeout=5).raise_for_status()


def confirmations(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/cardholder-confirmations", timeout=5).json()


# The conftest's canary demographics (tests/ is not a package: the `canary` fixture hands
# them over, see `_canary`); asserted never to leak into a log line or an error.
CANARY: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _canary(canary):
    CANARY.update(canary)


def assert_no_phi(text):
    assert CANARY
    for value in CANARY.values():
        assert value not in text


@pytest.fixture
def screening_day(cc_sandbox):
    """Pins the sandbox's clock to noon UTC on a fixed day in its future (mid-June, so no
    Feb 29 and no month end), and returns that day: expiries and ages are then exact
    whatever the hour the suite runs at."""
    day = date(datetime.now(timezone.utc).year + 2, 6, 15)
    response = requests.post(
        f"{cc_sandbox.base_url}/_sandbox/clock", json={"now": f"{day.isoformat()}T12:00:00Z"}, timeout=5
    )
    response.raise_for_status()
    return day


def applicant(last_name="Smith", amount="1234.56", *, reference=None, birth_date=None, **changes):
    values = {
        "reference": f"appt-{last_name.lower()}" if reference is None else reference,
        "first_name": CANARY["first_name"],
        "last_name": last_name,
        "birth_date": birth_date or date.fromisoformat(CANARY["birth_date"]),
        "address": Address(line1=CANARY["line1"], city=CANARY["city"], state="IL", zip="62565"),
        "requested_amount": D(amount),
    }
    values.update(changes)
    return PrescreenApplicant(**values)


def batch(*applicants):
    return PrescreenRequest(merchant_number=MERCHANT, applicants=tuple(applicants))


def cardholder(last_name="Cardholder-Reyes", amount="1200.00", *, reference="CS-2026-0001", birth_date=None):
    return CardholderRequest(
        merchant_number=MERCHANT,
        reference=reference,
        requested_amount=D(amount),
        first_name=CANARY["first_name"],
        last_name=last_name,
        birth_date=birth_date or date.fromisoformat(CANARY["birth_date"]),
        address=Address(line1=CANARY["line1"], city=CANARY["city"], state="IL", zip="62565"),
    )


# --- each outcome ------------------------------------------------------------------------------


def test_one_batch_gets_each_outcome_in_the_order_sent(cc_client, cc_sandbox, screening_day):
    minor_birth = date(screening_day.year - 17, screening_day.month, 1)

    results = cc_client.prescreen(batch(
        applicant("Smith", "1234.56"),
        applicant("Partial-Nguyen", "2500.00"),
        applicant("Cardholder-Reyes", "1800.00"),
        applicant("Decline-Parker", "900.00"),
        applicant("Refer-Garcia", "900.00"),
        applicant("Nomatch-Ortiz", "900.00"),
        applicant("Thompson", "900.00", reference="appt-minor", birth_date=minor_birth),
    ))

    expires = screening_day + timedelta(days=30)
    assert results == [
        PrescreenResult("appt-smith", PrescreenOutcome.PREQUALIFIED, D("1500.00"), expires, "PREAPPROVED"),
        PrescreenResult("appt-partial-nguyen", PrescreenOutcome.PREQUALIFIED, D("1500.00"), expires, "PREAPPROVED"),
        PrescreenResult("appt-cardholder-reyes", PrescreenOutcome.EXISTING_CARDHOLDER, D("5000.00"), None, "ACCOUNT_FOUND"),
        PrescreenResult("appt-decline-parker", PrescreenOutcome.NOT_PREQUALIFIED, None, None, "NOT_PREAPPROVED"),
        PrescreenResult("appt-refer-garcia", PrescreenOutcome.NOT_PREQUALIFIED, None, None, "NOT_PREAPPROVED"),
        PrescreenResult("appt-nomatch-ortiz", PrescreenOutcome.NO_RESULT, None, None, "NO_MATCH"),
        PrescreenResult("appt-minor", PrescreenOutcome.NO_RESULT, None, None, "NOT_ELIGIBLE"),
    ]
    assert all(isinstance(result.amount, Decimal) for result in results[:3])
    # One request for the whole batch (and the token).
    assert [(e["method"], e["path"], e["status"]) for e in request_log(cc_sandbox)] == [
        ("POST", "/v1/oauth2/token", 200), ("POST", "/v1/quickscreens", 200),
    ]


def test_partial_persona_is_prequalified_for_less_than_the_fee_to_the_cent(cc_client, screening_day):
    # 60% of 1234.56 is 740.736: pre-qualified up to 740.74, below the estimated fee.
    [result] = cc_client.prescreen(batch(applicant("partial", "1234.56")))

    assert (result.outcome, result.amount) == (PrescreenOutcome.PREQUALIFIED, D("740.74"))
    assert result.amount < D("1234.56")


def test_an_applicant_turning_18_on_the_day_is_screened(cc_client, screening_day):
    eighteen_today = date(screening_day.year - 18, screening_day.month, screening_day.day)
    seventeen = eighteen_today + timedelta(days=1)

    results = cc_client.prescreen(batch(
        applicant("Smith", "900.00", reference="adult", birth_date=eighteen_today),
        applicant("Smith", "900.00", reference="minor", birth_date=seventeen),
    ))

    assert [(r.reference, r.outcome, r.raw_status) for r in results] == [
        ("adult", PrescreenOutcome.PREQUALIFIED, "PREAPPROVED"),
        ("minor", PrescreenOutcome.NO_RESULT, "NOT_ELIGIBLE"),
    ]


def test_expiry_follows_the_sandbox_clock_and_its_validity(cc_client, cc_sandbox, screening_day, advance_clock):
    set_config(cc_sandbox, prescreen_valid_days=45)
    [first] = cc_client.prescreen(batch(applicant("Smith", "500.00")))
    advance_clock(cc_sandbox, 86400)
    [next_day] = cc_client.prescreen(batch(applicant("Smith", "500.00")))

    assert first.expires_on == screening_day + timedelta(days=45)
    assert next_day.expires_on == screening_day + timedelta(days=46)
    assert first.amount == next_day.amount == D("500.00")


def test_an_invalid_entry_is_no_result_and_the_rest_of_the_batch_is_screened(cc_client, screening_day, caplog):
    caplog.set_level(logging.DEBUG)
    bad_address = Address(line1=CANARY["line1"], city=CANARY["city"], state="Illinois", zip="6256")

    results = cc_client.prescreen(batch(
        applicant("Smith", "900.00", reference="good"),
        applicant("Smith", "900.00", reference="bad", address=bad_address),
    ))

    assert [(r.reference, r.outcome, r.amount, r.raw_status) for r in results] == [
        ("good", PrescreenOutcome.PREQUALIFIED, D("1000.00"), "PREAPPROVED"),
        ("bad", PrescreenOutcome.NO_RESULT, None, "INVALID"),
    ]
    assert "entry 2 of 2 refused as invalid: address.state, address.zip" in caplog.text
    assert_no_phi(caplog.text)
    assert "Illinois" not in caplog.text and "6256" not in caplog.text


# --- batch limits ----------------------------------------------------------------------------


def test_the_client_says_how_many_applicants_a_batch_takes_and_a_full_batch_is_one_request(cc_client, cc_sandbox):
    assert cc_client.max_prescreen_batch == PRESCREEN_MAX_BATCH == 100

    results = cc_client.prescreen(batch(*(applicant("Smith", "700.00", reference=f"a{i}") for i in range(100))))

    assert len(results) == 100
    assert [r.reference for r in results] == [f"a{i}" for i in range(100)]
    assert {(r.outcome, r.amount) for r in results} == {(PrescreenOutcome.PREQUALIFIED, D("1000.00"))}
    assert [e["path"] for e in request_log(cc_sandbox)] == ["/v1/oauth2/token", "/v1/quickscreens"]


@pytest.mark.parametrize(
    "references, message",
    [
        ([], "at least one applicant"),
        ([f"a{i}" for i in range(101)], "at most 100 applicants"),
        (["same", "other", "same"], "must be unique"),
        ([""], "reference of 1 to 64 characters"),
        (["r" * 65], "reference of 1 to 64 characters"),
    ],
)
def test_a_batch_carecredit_would_refuse_is_never_sent(cc_client, cc_sandbox, references, message):
    with pytest.raises(ValueError, match=message):
        cc_client.prescreen(batch(*(applicant(reference=reference) for reference in references)))

    assert request_log(cc_sandbox) == []


def test_money_must_be_decimal_in_whole_cents_and_nothing_is_sent_otherwise(cc_client, cc_sandbox):
    with pytest.raises(TypeError):
        cc_client.prescreen(batch(applicant(requested_amount=900.0)))
    with pytest.raises(ValueError):
        cc_client.prescreen(batch(applicant(requested_amount=D("900.005"))))

    assert request_log(cc_sandbox) == []


def test_the_merchants_rate_limit_is_transient_with_retry_after_and_lifts_with_time(
    cc_client, cc_sandbox, advance_clock
):
    set_config(cc_sandbox, prescreen_batches_per_minute=2)
    cc_client.prescreen(batch(applicant()))
    cc_client.prescreen(batch(applicant()))

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.prescreen(batch(applicant()))

    error = excinfo.value
    assert type(error) is TransientPartnerError
    # 60 s after the first batch, in whole seconds (a loaded machine may take a second).
    assert error.status == 429 and error.retry_after in (59.0, 60.0)
    assert str(error) == (
        f"CareCredit is limiting our request rate (HTTP 429): rate_limited; it asked us to retry in {error.retry_after:g} s"
    )
    advance_clock(cc_sandbox, 60)
    assert cc_client.prescreen(batch(applicant()))[0].outcome == PrescreenOutcome.PREQUALIFIED


def test_a_prescreen_is_paced_by_the_shared_limiter_and_nothing_is_sent_when_it_holds_back(cc_sandbox):
    config = cc_sandbox.app.config
    slots = []
    client = CareCreditClient(
        cc_sandbox.base_url, config.client_id, config.client_secret, before_request=lambda: slots.append(1)
    )
    client.prescreen(batch(applicant()))
    assert len(slots) == 2  # the token, the batch

    def full():
        raise RateLimited("the CareCredit connection is busy", retry_after=1.5)

    held = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, before_request=full)
    with pytest.raises(RateLimited):
        held.prescreen(batch(applicant()))
    assert [e["path"] for e in request_log(cc_sandbox)] == ["/v1/oauth2/token", "/v1/quickscreens"]


# --- faults: transient, never ambiguous ----------------------------------------------------------


def test_503_on_a_prescreen_is_transient_not_ambiguous(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/quickscreens", mode="error", status=503, retry_after=30)

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.prescreen(batch(applicant()))

    assert type(excinfo.value) is TransientPartnerError
    assert (excinfo.value.status, excinfo.value.retry_after) == (503, 30.0)
    assert "may or may not have been saved" not in str(excinfo.value)


def test_a_read_timeout_on_a_prescreen_is_transient_not_ambiguous(cc_sandbox, wait_until):
    config = cc_sandbox.app.config
    client = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, read_timeout=0.3)
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/quickscreens", mode="timeout", latency_ms=700)

    started = time.monotonic()
    with pytest.raises(TransientPartnerError) as excinfo:
        client.prescreen(batch(applicant()))

    assert time.monotonic() - started < 0.65
    assert type(excinfo.value) is TransientPartnerError
    assert str(excinfo.value) == "CareCredit did not answer within 0.3 s (read timeout)"
    # Let the slow request finish on the server so it cannot spill into the next test.
    wait_until(lambda: any(entry["fault"] == "timeout" for entry in request_log(cc_sandbox)))


def test_a_dropped_prescreen_is_transient_and_sending_it_again_gets_the_same_answer(
    cc_client, cc_sandbox, screening_day, caplog
):
    caplog.set_level(logging.DEBUG)
    request = batch(applicant("Smith", "1234.56"), applicant("Cardholder-Reyes", "900.00"))
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/quickscreens", mode="drop")

    with pytest.raises(TransientPartnerError) as excinfo:
        cc_client.prescreen(request)
    assert type(excinfo.value) is TransientPartnerError
    assert str(excinfo.value) == "CareCredit closed the connection without answering"

    # The sandbox screened the batch before the connection dropped; asking again is safe.
    again = cc_client.prescreen(request)
    assert [(r.outcome, r.amount, r.expires_on) for r in again] == [
        (PrescreenOutcome.PREQUALIFIED, D("1500.00"), screening_day + timedelta(days=30)),
        (PrescreenOutcome.EXISTING_CARDHOLDER, D("5000.00"), None),
    ]
    assert [(e["path"], e["status"], e["fault"]) for e in request_log(cc_sandbox)][1:] == [
        ("/v1/quickscreens", None, "drop"), ("/v1/quickscreens", 200, None),
    ]
    assert_no_phi(caplog.text + str(excinfo.value))


def test_a_batch_carecredit_rejects_is_permanent_with_its_field_message(cc_client, cc_sandbox):
    # A merchant number CareCredit cannot read: the whole batch is refused, nothing screened.
    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.prescreen(PrescreenRequest(merchant_number=" ", applicants=(applicant(),)))

    assert excinfo.value.status == 400
    assert str(excinfo.value) == "CareCredit rejected the Quickscreen batch: merchant_number: is required"


# --- no PHI ----------------------------------------------------------------------------------


def test_no_demographics_in_logs_or_errors_on_any_path(cc_client, cc_sandbox, caplog, screening_day):
    caplog.set_level(logging.DEBUG)
    errors = []
    cc_client.prescreen(batch(applicant("Smith"), applicant("Nomatch-Ortiz"), applicant("Cardholder-Reyes")))
    for mode, status in (("error", 503), ("error", 429), ("error", 400), ("drop", None)):
        add_fault(cc_sandbox, method="POST", path_prefix="/v1/quickscreens", mode=mode, **({"status": status} if status else {}))
        with pytest.raises(TransientPartnerError if status != 400 else PermanentPartnerError) as excinfo:
            cc_client.prescreen(batch(applicant("Smith")))
        errors.append(f"{excinfo.value} {excinfo.value!r}")
    with pytest.raises(NotFoundError) as excinfo:
        cc_client.confirm_cardholder(cardholder("Smith"))
    errors.append(str(excinfo.value))
    cc_client.confirm_cardholder(cardholder())

    assert len(errors) == 5
    for text in (caplog.text, *errors):
        assert_no_phi(text)
        assert "Smith" not in text and "Cardholder-Reyes" not in text and "Nomatch" not in text
    assert "carecredit quickscreen of 3 applicants: prequalified=1 existing_cardholder=1 not_prequalified=0 no_result=1" in caplog.text


# --- malformed answers (canned, no server) -----------------------------------------------------------


class CannedSession:
    """Answers the token request and one other (method, path) from a table of JSON texts."""

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


TOKEN = (200, '{"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}')


def canned(path, body, status=200):
    clear_token_cache()
    session = CannedSession({("POST", "/v1/oauth2/token"): TOKEN, ("POST", path): (status, body)})
    return CareCreditClient("https://carecredit.invalid", "canned", "secret", session=session)


def canned_results(*entries):
    return canned("/v1/quickscreens", json.dumps({"merchant_number": MERCHANT, "screened_on": "2030-06-15", "results": entries}))


def entry(reference, status="PREAPPROVED", amount="1500.00", credit=None, expires_on="2030-07-15"):
    return {"reference": reference, "status": status, "preapproved_amount": amount, "available_credit": credit, "expires_on": expires_on}


def two():
    return batch(applicant(reference="a"), applicant("Jones", reference="b"))


@pytest.mark.parametrize(
    "body, reason",
    [
        ("[]", "results"),
        ('{"results": {"a": {}}}', "results"),
        (json.dumps({"results": [entry("a")]}), "results: not one per applicant sent"),
        (json.dumps({"results": [entry("a"), entry("b"), entry("c")]}), "results: not one per applicant sent"),
        (json.dumps({"results": [entry("a"), entry("c")]}), "results: not one per applicant sent"),
        (json.dumps({"results": [entry("a"), entry("a")]}), "results: a reference missing or repeated"),
        (json.dumps({"results": [entry("a"), {"status": "PREAPPROVED"}]}), "results: a reference missing or repeated"),
        (json.dumps({"results": [entry("a"), "b"]}), "results: a reference missing or repeated"),
    ],
)
def test_an_answer_that_does_not_account_for_each_applicant_is_unreadable_and_transient(body, reason):
    client = canned("/v1/quickscreens", body)

    with pytest.raises(TransientPartnerError) as excinfo:
        client.prescreen(two())

    assert type(excinfo.value) is TransientPartnerError
    assert str(excinfo.value) == f"CareCredit's answer for the Quickscreen batch could not be read ({reason})"
    clear_token_cache()


def test_a_proxy_page_in_place_of_the_answer_is_transient():
    with pytest.raises(TransientPartnerError, match=r"^CareCredit sent an answer that is not JSON \(HTTP 200\)$"):
        canned("/v1/quickscreens", "<html>gateway</html>").prescreen(two())
    clear_token_cache()


@pytest.mark.parametrize(
    "odd, raw_status",
    [
        (entry("b", amount=None), "PREAPPROVED"),  # pre-approved for what?
        (entry("b", amount="12.345"), "PREAPPROVED"),
        (entry("b", amount=True), "PREAPPROVED"),
        (entry("b", expires_on=None), "PREAPPROVED"),
        (entry("b", expires_on="15/07/2030"), "PREAPPROVED"),
        (entry("b", expires_on="2030-02-30"), "PREAPPROVED"),
        (entry("b", status="ACCOUNT_FOUND", amount=None, credit=None), "ACCOUNT_FOUND"),
        (entry("b", status="PRE_APPROVED_PLUS"), "PRE_APPROVED_PLUS"),  # unknown: never a yes
        (entry("b", status="preapproved"), "preapproved"),  # case matters
        (entry("b", status=None), ""),
        (entry("b", status="X" * 65), ""),
    ],
)
def test_an_entry_that_cannot_be_read_is_no_result_and_the_others_stand(odd, raw_status, caplog):
    client = canned_results(entry("a"), odd)

    results = client.prescreen(two())

    assert results == [
        PrescreenResult("a", PrescreenOutcome.PREQUALIFIED, D("1500.00"), date(2030, 7, 15), "PREAPPROVED"),
        PrescreenResult("b", PrescreenOutcome.NO_RESULT, None, None, raw_status),
    ]
    assert "entry 2 of 2" in caplog.text
    clear_token_cache()


def test_amounts_are_decimals_even_as_json_numbers_and_answer_order_does_not_matter():
    client = canned("/v1/quickscreens", """{"results": [
        {"reference": "b", "status": "ACCOUNT_FOUND", "available_credit": 2500.5, "preapproved_amount": 99,
         "expires_on": "2030-07-15"},
        {"reference": "a", "status": "NOT_PREAPPROVED", "preapproved_amount": "1500.00", "expires_on": "2030-07-15"}
    ]}""")

    results = client.prescreen(two())

    # Amounts and expiries the outcome does not carry are not taken from the wire.
    assert results == [
        PrescreenResult("a", PrescreenOutcome.NOT_PREQUALIFIED, None, None, "NOT_PREAPPROVED"),
        PrescreenResult("b", PrescreenOutcome.EXISTING_CARDHOLDER, D("2500.50"), None, "ACCOUNT_FOUND"),
    ]
    assert isinstance(results[1].amount, Decimal)
    clear_token_cache()


def test_raw_status_tables_are_exact_and_case_sensitive():
    assert RAW_PRESCREEN_TO_OUTCOME == {
        "PREAPPROVED": PrescreenOutcome.PREQUALIFIED,
        "ACCOUNT_FOUND": PrescreenOutcome.EXISTING_CARDHOLDER,
        "NOT_PREAPPROVED": PrescreenOutcome.NOT_PREQUALIFIED,
        "NO_MATCH": PrescreenOutcome.NO_RESULT,
        "NOT_ELIGIBLE": PrescreenOutcome.NO_RESULT,
        "INVALID": PrescreenOutcome.NO_RESULT,
    }
    assert RAW_CONFIRMATION_TO_DECISION == {
        "APPROVED": DecisionStatus.APPROVED,
        "INSUFFICIENT_CREDIT": DecisionStatus.DECLINED,
    }


# --- cardholder confirmation -------------------------------------------------------------------------


def test_a_cardholder_whose_credit_covers_the_amount_is_approved_with_offers(cc_client, cc_sandbox):
    confirmation = cc_client.confirm_cardholder(cardholder("Cardholder-Reyes", "1200.00"))

    decision = confirmation.decision
    assert decision.application_id.startswith("cnf_")
    assert (decision.status, decision.raw_status) == (DecisionStatus.APPROVED, "APPROVED")
    assert (decision.requested_amount, decision.approved_amount, decision.credit_limit) == (
        D("1200.00"), D("1200.00"), D("5000.00")
    )
    assert [offer.code for offer in decision.offers] == ALL_CODES
    assert decision.decided_at.tzinfo is not None
    assert len(confirmation.account_last4) == 4 and confirmation.account_last4.isdigit()
    assert confirmation.account_token.startswith("acct_")
    [stored] = confirmations(cc_sandbox)
    assert (stored["confirmation_id"], stored["reference"]) == (decision.application_id, "CS-2026-0001")


def test_an_amount_beyond_the_available_credit_is_declined_for_the_card_not_the_patient(cc_client):
    confirmation = cc_client.confirm_cardholder(cardholder("Cardholder-Reyes", "5000.01"))

    decision = confirmation.decision
    assert (decision.status, decision.raw_status) == (DecisionStatus.DECLINED, "INSUFFICIENT_CREDIT")
    assert (decision.approved_amount, decision.credit_limit, decision.offers) == (None, D("5000.00"), ())
    # The available credit follows the sandbox's setting; exactly the credit is covered.
    assert cc_client.confirm_cardholder(cardholder(amount="5000.00", reference="CS-2")).decision.status == DecisionStatus.APPROVED


def test_the_same_reference_returns_the_first_confirmation_and_one_is_kept(cc_client, cc_sandbox):
    first = cc_client.confirm_cardholder(cardholder())
    again = cc_client.confirm_cardholder(cardholder())

    assert again == first
    assert len(confirmations(cc_sandbox)) == 1
    assert [e["status"] for e in request_log(cc_sandbox) if e["path"] == "/v1/cardholder-confirmations"] == [201, 200]


def test_the_same_reference_with_another_amount_is_permanent(cc_client, cc_sandbox):
    cc_client.confirm_cardholder(cardholder(amount="1200.00"))

    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.confirm_cardholder(cardholder(amount="1300.00"))

    assert excinfo.value.status == 409
    assert str(excinfo.value) == "CareCredit rejected the cardholder confirmation: reference_reused"
    assert [c["requested_amount"] for c in confirmations(cc_sandbox)] == ["1200.00"]


@pytest.mark.parametrize("last_name, adult", [("Thompson", True), ("Cardholder-Reyes", False)])
def test_no_account_for_the_identity_is_not_found_and_nothing_is_kept(cc_client, cc_sandbox, last_name, adult):
    birth_date = None if adult else date(datetime.now(timezone.utc).year - 10, 1, 1)

    with pytest.raises(NotFoundError) as excinfo:
        cc_client.confirm_cardholder(cardholder(last_name, birth_date=birth_date))

    assert excinfo.value.status == 404
    assert str(excinfo.value) == "CareCredit found no account for this cardholder (HTTP 404); the patient can apply instead"
    assert confirmations(cc_sandbox) == []


def test_a_dropped_confirmation_is_ambiguous_and_sending_it_again_finds_the_first(cc_client, cc_sandbox):
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/cardholder-confirmations", mode="drop")

    with pytest.raises(AmbiguousWriteError) as excinfo:
        cc_client.confirm_cardholder(cardholder())

    assert str(excinfo.value) == (
        "CareCredit closed the connection without answering; the cardholder confirmation "
        "may or may not have been saved: look it up before writing again"
    )
    [kept] = confirmations(cc_sandbox)
    assert cc_client.confirm_cardholder(cardholder()).decision.application_id == kept["confirmation_id"]
    assert len(confirmations(cc_sandbox)) == 1


def test_invalid_confirmation_fields_are_permanent_and_name_fields_not_values(cc_client, cc_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    request = cardholder()
    bad = CardholderRequest(**{**request.__dict__, "address": Address(line1="", city=CANARY["city"], state="IL", zip="6256")})

    with pytest.raises(PermanentPartnerError) as excinfo:
        cc_client.confirm_cardholder(bad)

    assert excinfo.value.fields == {"cardholder.address.line1": "is required", "cardholder.address.zip": "must be 5 digits"}
    for text in (str(excinfo.value), caplog.text):
        assert_no_phi(text)
        assert "6256" not in text
    assert confirmations(cc_sandbox) == []


def confirmation_json(**changes):
    body = {
        "confirmation_id": "cnf_1", "reference": "CS-2026-0001", "merchant_number": MERCHANT, "status": "APPROVED",
        "requested_amount": "1200.00", "approved_amount": "1200.00", "available_credit": "5000.00",
        "account_last4": "1071", "account_token": "acct_abc", "decided_at": "2030-06-15T12:00:00Z",
        "promotions": [{"code": "DI12", "type": "DEFERRED_INTEREST", "months": 12, "apr": "0.00", "min_purchase": "200.00"}],
    }
    body.update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"account_last4": "6011000000001071"}, "account_last4"),  # a full number is refused, never kept
        ({"account_last4": 1071}, "account_last4"),
        ({"account_token": ""}, "account_token"),
        ({"approved_amount": None}, "approved_amount"),
        ({"available_credit": "lots"}, "available_credit"),
        ({"confirmation_id": None}, "confirmation_id"),
        ({"reference": None}, "reference"),
    ],
)
def test_an_unreadable_confirmation_is_ambiguous(changes, reason):
    client = canned("/v1/cardholder-confirmations", confirmation_json(**changes), status=201)

    with pytest.raises(AmbiguousWriteError) as excinfo:
        client.confirm_cardholder(cardholder())

    assert str(excinfo.value) == (
        f"CareCredit accepted the cardholder confirmation but its answer could not be read ({reason}); "
        "the cardholder confirmation may or may not have been saved: look it up before writing again"
    )
    assert "6011000000001071" not in str(excinfo.value)
    clear_token_cache()


def test_a_canned_confirmation_is_read_exactly_and_another_reference_is_refused():
    confirmation = canned("/v1/cardholder-confirmations", confirmation_json(), status=201).confirm_cardholder(cardholder())
    assert (confirmation.account_last4, confirmation.account_token) == ("1071", "acct_abc")
    assert confirmation.decision.decided_at == datetime(2030, 6, 15, 12, tzinfo=timezone.utc)
    assert [offer.code for offer in confirmation.decision.offers] == ["deferred_12"]

    unknown = canned("/v1/cardholder-confirmations", confirmation_json(status="ON_HOLD"), status=201)
    decision = unknown.confirm_cardholder(cardholder()).decision
    assert (decision.status, decision.approved_amount, decision.offers) == (DecisionStatus.UNKNOWN, None, ())

    other = canned("/v1/cardholder-confirmations", confirmation_json(reference="CS-2026-0002"), status=201)
    with pytest.raises(PermanentPartnerError, match="of another reference"):
        other.confirm_cardholder(cardholder())
    clear_token_cache()
