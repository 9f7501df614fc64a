"""Promise 1's front door: the CareCredit webhook accepts exactly what CareCredit signed.

The Standard Webhooks test list, end to end through the receiver: missing or malformed
headers, a bad signature, timestamps 301 s either side, a body re-serialised with other
whitespace, a replayed event id, two secrets during a rotation. Every refusal changes
nothing and says nothing about the body, in the answer or the log; digests are compared
in constant time.
"""

import ast
import hmac
import inspect
import json
import logging
import time

import pytest
from django.test import Client

from carecredit_bridge import signing
from carecredit_bridge.signing import SIGNATURE_HEADER, compute_digest, sign
from financing import services
from financing.models import CaseState, Decision, FinancedCase, InboundEvent

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/webhooks/carecredit/"
HEADER = f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}"
# Never in the payload of a real CareCredit webhook (it is thin), but if one ever carried
# patient data it must not come back in an error or a log line.
CANARY = {"patient_name": "ZZCANARY-Lastname", "dob": "1901-02-03", "email": "canary@example.invalid"}


@pytest.fixture
def sent_case(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    if case.state != CaseState.APPLICATION_SENT:
        pytest.fail(f"the case should wait for the decision, it is {case.state}")
    return case


def event_body(case, event_id="evt_sec_1", **extra) -> bytes:
    return json.dumps({"event_id": event_id, "type": "application.status_changed", "application_id": case.application_id, **CANARY, **extra}).encode()


def post(raw: bytes, header: str | None):
    extra = {HEADER: header} if header is not None else {}
    return Client().post(URL, data=raw, content_type="application/json", **extra)


def assert_refused_quietly(response, case, caplog, reason):
    assert response.status_code == 400
    assert response.json() == {"error": f"Invalid signature: {reason}"}
    assert InboundEvent.objects.count() == 0 and Decision.objects.count() == 0
    assert FinancedCase.objects.get(pk=case.pk).state == CaseState.APPLICATION_SENT
    for value in CANARY.values():
        assert value not in response.content.decode() and value not in caplog.text


MALFORMED_HEADERS = [
    (None, "missing signature header"),
    ("", "missing signature header"),
    ("garbage", "malformed signature header"),
    ("t=1767225600", "malformed signature header"),
    ("v1=" + "0" * 64, "malformed signature header"),
    ("t=abc,v1=" + "0" * 64, "malformed signature header"),
    ("t=1767225600,t=1767225601,v1=" + "0" * 64, "malformed signature header"),
    ("t=１７６７２２５６００,v1=" + "0" * 64, "malformed signature header"),  # full-width digits
    ("t=99999999999999999999,v1=" + "0" * 64, "malformed signature header"),
]


def test_missing_or_malformed_headers_are_refused(sent_case, caplog):
    caplog.set_level(logging.DEBUG)
    for header, reason in MALFORMED_HEADERS:
        assert_refused_quietly(post(event_body(sent_case), header), sent_case, caplog, reason)


def test_a_wrong_secret_or_a_tampered_body_is_refused(sent_case, caplog):
    caplog.set_level(logging.DEBUG)
    raw = event_body(sent_case)
    now = int(time.time())
    assert_refused_quietly(post(raw, sign("whsec_wrong", raw, now)), sent_case, caplog, "no matching signature")
    tampered = raw.replace(b"evt_sec_1", b"evt_sec_2")
    assert_refused_quietly(post(tampered, sign("whsec_sandbox", raw, now)), sent_case, caplog, "no matching signature")
    # The same JSON, re-serialised with other whitespace, is other bytes: refused.
    reserialised = json.dumps(json.loads(raw), indent=2).encode()
    assert json.loads(reserialised) == json.loads(raw)
    assert_refused_quietly(post(reserialised, sign("whsec_sandbox", raw, now)), sent_case, caplog, "no matching signature")


def test_timestamps_301_s_either_side_are_refused_and_295_s_accepted(sent_case, caplog):
    caplog.set_level(logging.DEBUG)
    raw = event_body(sent_case)
    for skew in (-301, 301, -3600, 10**6):
        at = int(time.time()) + skew
        assert_refused_quietly(post(raw, sign("whsec_sandbox", raw, at)), sent_case, caplog, "timestamp outside tolerance")
    early = post(raw, sign("whsec_sandbox", raw, int(time.time()) - 295))
    assert early.status_code == 200 and early.json() == {"status": "approved"}
    late_raw = event_body(sent_case, "evt_sec_late")
    late = post(late_raw, sign("whsec_sandbox", late_raw, int(time.time()) + 295))
    assert late.status_code == 200 and late.json() == {"status": "ignored"}  # accepted; the case had moved on


def test_a_replayed_event_id_is_acknowledged_and_acts_once(sent_case, tasks):
    raw = event_body(sent_case)
    first = post(raw, sign("whsec_sandbox", raw, int(time.time())))
    assert first.status_code == 200 and first.json() == {"status": "approved"}
    queued = list(tasks.names())
    # Replayed later, freshly and validly signed (an attacker or CareCredit's redelivery).
    replay = post(raw, sign("whsec_sandbox", raw, int(time.time()) + 5))
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    assert InboundEvent.objects.count() == 1 and Decision.objects.count() == 1
    assert tasks.names() == queued  # nothing enqueued twice
    states = [h.state for h in FinancedCase.objects.get(pk=sent_case.pk).history.all()]
    assert states.count(CaseState.APPROVED) == 1


def test_two_secrets_during_a_rotation(sent_case, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.CARECREDIT_WEBHOOK_SECRETS = ["whsec_next", "whsec_sandbox"]
    now = int(time.time())
    raw_a = event_body(sent_case, "evt_rot_a")
    assert post(raw_a, sign("whsec_next", raw_a, now)).status_code == 200
    raw_b = event_body(sent_case, "evt_rot_b")
    assert post(raw_b, sign("whsec_sandbox", raw_b, now)).json() == {"status": "ignored"}  # the case moved on
    # A sender mid-rotation signs with both; one good v1 is enough.
    raw_c = event_body(sent_case, "evt_rot_c")
    both = f"t={now},v1={'f' * 64},v1={compute_digest('whsec_next', raw_c, now)}"
    assert post(raw_c, both).status_code == 200
    # Rotation over: the old secret no longer opens the door.
    settings.CARECREDIT_WEBHOOK_SECRETS = ["whsec_next"]
    raw_d = event_body(sent_case, "evt_rot_d")
    refused = post(raw_d, sign("whsec_sandbox", raw_d, now))
    assert refused.status_code == 400 and refused.json() == {"error": "Invalid signature: no matching signature"}
    assert sorted(InboundEvent.objects.values_list("event_id", flat=True)) == ["evt_rot_a", "evt_rot_b", "evt_rot_c"]
    # An empty secret in the list never becomes a key.
    settings.CARECREDIT_WEBHOOK_SECRETS = ["", ""]
    raw_e = event_body(sent_case, "evt_rot_e")
    assert post(raw_e, sign("", raw_e, now)).json() == {"error": "Invalid signature: no webhook secret configured"}


def test_an_oversized_body_is_a_400_not_a_500(sent_case):
    raw = event_body(sent_case, padding="x" * 3_000_000)
    response = Client(raise_request_exception=False).post(URL, data=raw, content_type="application/json", **{HEADER: sign("whsec_sandbox", raw, int(time.time()))})
    assert response.status_code == 400
    assert InboundEvent.objects.count() == 0


def test_signatures_are_compared_in_constant_time(sent_case, monkeypatch):
    """compare_digest does the comparing, and no == or != ever touches a signature."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    raw = event_body(sent_case)
    assert post(raw, sign("whsec_sandbox", raw, int(time.time()))).status_code == 200
    assert calls == [(bytes, bytes)]

    tree = ast.parse(inspect.getsource(signing))
    suspicious = {"digest", "expected", "candidate", "candidates", "signature", "header"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            assert not names & suspicious, ast.unparse(node)
