"""Promise 4: malformed or out-of-policy input never reaches the ledger.

Hypothesis drives the intake API, the webhook parser and the decision → arrangement
mapping with malformed and out-of-policy values: the answer is a 400 with field messages
or a needs_attention reason, never a 500, never a write to Dentrix. Schemathesis checks
every operation of /api/schema/ against the running app: no 5xx, responses as documented.
"""

import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from django.test import Client
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from rest_framework.test import APIClient
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from financing import services
from financing.models import PROMOTION_CHOICES, CaseState, FinancedCase, InboundEvent
from financing.ports import DecisionStatus, LenderDecision, Offer, PromotionKind

pytestmark = pytest.mark.django_db(transaction=True)

FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
PROMOTIONS = [code for code, _ in PROMOTION_CHOICES]

junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60), st.text(alphabet="0123456789.-eE+", max_size=30),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["", " ", "NaN", "Infinity", "-0.00", "1e309", "12.345", "99999999999.99", "0.001", "1,000.00", "\x00", "١٢٣", "<script>"]),
)


def intake_bodies(patient):
    """Bodies a form, a script or an attacker might send: each field valid, junk or absent."""
    fields = {
        "location": st.one_of(st.just("main"), st.just("elsewhere"), junk),
        "patient_id": st.one_of(st.just(patient["patient_id"]), st.just("999999"), junk),
        "treatment_plan_id": st.one_of(st.just(patient["treatment_plan_id"]), st.just("5001"), junk),
        "down_payment": st.one_of(st.decimals(min_value=-10**6, max_value=10**9, places=2).map(str), junk),
        "promotion": st.one_of(st.sampled_from(PROMOTIONS), junk),
        "patient_consents_to_messages": st.one_of(st.booleans(), junk),
    }
    as_dict = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(as_dict, as_dict, as_dict, junk)


def assert_field_messages(body, allowed_keys):
    """The API's one error shape (core/api_errors.py): a sentence, and lists of messages by field."""
    assert isinstance(body, dict) and set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    for key, messages in body["errors"].items():
        assert key in allowed_keys, key
        assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages), body


def test_intake_answers_201_or_400_with_field_messages_never_500(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(coordinator)
    keys = {"location", "patient_id", "treatment_plan_id", "down_payment", "promotion", "patient_consents_to_messages", "non_field_errors"}
    seen = {201: 0, 400: 0}

    @given(body=intake_bodies(patient))
    @hypothesis_settings(max_examples=120, **FAST)
    def check(body):
        response = api.post("/api/v1/cases/", json.dumps(body, default=str), content_type="application/json")
        assert response.status_code in (201, 400), (body, response.status_code, response.content[:300])
        seen[response.status_code] += 1
        if response.status_code == 400:
            assert_field_messages(response.json(), keys)

    check()
    for raw in (b"{", b"\xff\xfe", b"null", b"[]", b'{"location": "main"' + b" " * 10000):
        response = api.post("/api/v1/cases/", raw, content_type="application/json")
        assert response.status_code == 400, raw[:20]
    assert seen[400] > 50
    # Intake only reads Dentrix, and no step ran: nothing anywhere was written.
    assert sandboxes.dentrix_requests("POST") == []
    assert sandboxes.carecredit_applications() == []


def test_the_webhook_parser_answers_400_or_200_never_500(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    client = Client(raise_request_exception=False)
    events = st.fixed_dictionaries(
        {
            "event_id": st.one_of(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=120), junk),
            "application_id": st.one_of(st.just("app_nobody"), st.text(min_size=1, max_size=70), junk),
        },
        optional={
            "type": st.one_of(st.just("application.status_changed"), junk),
            "status": st.one_of(st.sampled_from(["APPROVED", "DECLINED", "ON_HOLD"]), junk),
            "created": junk,
        },
    )
    bodies = st.one_of(events.map(lambda e: json.dumps(e, default=str).encode()), st.binary(max_size=300), junk.map(lambda j: json.dumps(j, default=str).encode()))
    outcomes = set()

    @given(raw=bodies)
    @hypothesis_settings(max_examples=150, **FAST)
    def check(raw):
        header = sign("whsec_sandbox", raw, int(time.time()))
        response = client.post("/api/v1/webhooks/carecredit/", data=raw, content_type="application/json", **{f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}": header})
        assert response.status_code in (200, 400), (raw[:200], response.status_code)
        body = response.json()
        if response.status_code == 400:
            # Fields missing or not ids, or a body that is not JSON Chairside reads (core.inbound).
            assert body["error"].startswith("Malformed event: "), body
        else:
            assert body["status"] in ("unknown_application", "duplicate")
        outcomes.add(response.status_code)

    check()
    assert outcomes == {200, 400}
    # None of it touched the case: unknown applications and junk change nothing.
    assert FinancedCase.objects.get(pk=case.pk).state == CaseState.APPLICATION_SENT
    assert not InboundEvent.objects.filter(case=case).exists()


amounts = st.one_of(
    st.none(),
    st.decimals(min_value=-1000, max_value=10**8, places=2),
    st.sampled_from([Decimal("0.00"), Decimal("0.01"), Decimal("199.99"), Decimal("999.99"), Decimal("99999999.99"), Decimal("100000000.00"), Decimal("123456789012.00")]),
)
offers = st.builds(
    Offer,
    code=st.one_of(st.sampled_from(PROMOTIONS), st.text(max_size=12)),
    kind=st.sampled_from(list(PromotionKind)),
    months=st.one_of(st.sampled_from([6, 12, 18, 24, 36, 48, 60]), st.integers(min_value=-3, max_value=400)),
    apr=st.one_of(st.sampled_from([Decimal("0.00"), Decimal("17.90")]), st.decimals(min_value=-5, max_value=200, places=3)),
    min_amount=st.one_of(st.sampled_from([Decimal("200.00"), Decimal("1000.00")]), st.decimals(min_value=-10, max_value=10**7, places=2)),
)
decisions = st.builds(
    LenderDecision,
    application_id=st.just("app_fuzz"),
    status=st.sampled_from([DecisionStatus.APPROVED] * 6 + list(DecisionStatus)),
    raw_status=st.text(max_size=80),
    requested_amount=st.one_of(st.decimals(min_value=0, max_value=10**6, places=2), st.just(Decimal("123456789012.00"))),
    approved_amount=amounts,
    credit_limit=amounts,
    offers=st.lists(offers, max_size=4).map(tuple),
    decided_at=st.one_of(st.none(), st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc))),
)


def proper_offer(code: str) -> Offer:
    kind, months = code.rsplit("_", 1)
    if kind == "deferred":
        return Offer(code, PromotionKind.DEFERRED, int(months), Decimal("0.00"), Decimal("200.00"))
    return Offer(code, PromotionKind.REDUCED_APR, int(months), Decimal("17.90"), Decimal("1000.00"))


@st.composite
def scenarios(draw):
    """A plan, the patient's choices, and a decision: half well-formed (full or partial
    approvals offering the chosen promotion), half anything at all."""
    fee = draw(st.sampled_from(["150.00", "600.00", "2500.00", "9999.99"]))
    down = draw(st.sampled_from(["0.00", "100.00", "2400.00"]))
    promotion = draw(st.sampled_from(PROMOTIONS))
    if draw(st.booleans()):
        requested = max(Decimal(fee) - Decimal(down), Decimal("0.01"))
        approved = draw(st.sampled_from([requested, (requested * Decimal("0.6")).quantize(Decimal("0.01")), Decimal("250.00")]))
        others = draw(st.lists(st.sampled_from(PROMOTIONS).map(proper_offer), max_size=3))
        decision = LenderDecision(
            application_id="app_fuzz", status=DecisionStatus.APPROVED, raw_status="APPROVED", requested_amount=requested,
            approved_amount=approved, credit_limit=approved, offers=tuple([proper_offer(promotion), *others]), decided_at=None,
        )
    else:
        decision = draw(decisions)
    return fee, down, promotion, decision


def test_any_decision_becomes_a_verified_arrangement_or_a_needs_attention_reason(sandboxes, location, tasks):
    results = {}

    @given(scenario=scenarios())
    @hypothesis_settings(max_examples=60, **FAST)
    def check(scenario):
        fee, down, promotion, decision = scenario
        patient = sandboxes.new_patient("Thompson", fees=(fee,))
        case = FinancedCase.objects.create(
            location=location, patient_id=patient["patient_id"], guarantor_id=patient["guarantor_id"],
            treatment_plan_id=patient["treatment_plan_id"], promotion=promotion, requested_down_payment=Decimal(down),
            plan_total=Decimal(fee), procedures=[{"code": "D2740", "tooth": "3", "surface": "", "fee": fee}],
            state=CaseState.APPLICATION_SENT, application_id="app_fuzz",
        )
        outcome = services.apply_decision(case.pk, decision)
        case.refresh_from_db()
        step = services.write_arrangement(case.pk) if case.state == CaseState.APPROVED else None
        case.refresh_from_db()
        agreements = sandboxes.agreements(patient["guarantor_id"])
        results.setdefault(step or outcome, 0)
        results[step or outcome] += 1
        if step == "written":
            [stored] = agreements
            a = case.arrangement
            assert stored["payment_amount"] == f"{a.recurring_amount:.2f}" and stored["number_of_payments"] == a.number_of_payments
            assert a.down_payment + sum(Decimal(i["amount"]) for i in a.schedule) == a.plan_total + a.finance_charge
        else:
            assert step in (None, "needs_attention"), step
            assert agreements == []
            if case.state == CaseState.NEEDS_ATTENTION:
                assert case.state_reason and "Traceback" not in case.state_reason

    check()
    assert results.get("written") and results.get("needs_attention"), results
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == results["written"]


def test_every_api_operation_matches_its_schema_and_never_answers_5xx(live_server, sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    token = Token.objects.create(user=coordinator).key
    raw_schema = requests.get(f"{live_server.url}/api/schema/?format=json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw_schema)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /api/v1/cases/", "POST /api/v1/cases/", "GET /api/v1/cases/{id}/", "POST /api/v1/webhooks/carecredit/"}
    for operation in operations:
        # Valid requests, and requests that break the schema on purpose (wrong types, missing
        # fields): the answer is documented either way, and never a 5xx.
        # (A broken path parameter, "/cases/1.5e-3/", misses the API's routes altogether and
        # gets Django's plain 404 page, so the negative requests are held to "no 5xx".)
        for mode, mode_checks in ((GenerationMode.POSITIVE, checks), (GenerationMode.NEGATIVE, [not_a_server_error])):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=20, **FAST)
            def check(case):
                case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Token {token}"}, checks=mode_checks)

            check()
    assert sandboxes.dentrix_requests("POST") == []
