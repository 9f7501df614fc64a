"""The client's requests checked against Open Dental's documentation, field by field, and
its reading of Open Dental's answers: a stub session records what would go on the wire
(prepared as requests would send it) and answers as Open Dental does."""

import json
import re
from datetime import date
from decimal import Decimal

import pytest
import requests

from financing.ports import (
    AgreementRequest,
    AmbiguousWriteError,
    AppliedProcedure,
    Interval,
    LedgerNoteType,
    NotFoundError,
    PermanentPartnerError,
    RateLimited,
    TransientPartnerError,
)
from opendental_bridge import identity
from opendental_bridge.client import OpenDentalClient

REQUEST = AgreementRequest(
    guarantor_id="72",
    patient_id="72",
    agreement_date=date(2025, 3, 1),
    interval=Interval.MONTHLY,
    total_agreed_amount=Decimal("3000.00"),
    down_payment=Decimal("500.00"),
    payment_amount=Decimal("208.34"),
    number_of_payments=12,
    first_payment_due=date(2025, 4, 1),
    annual_finance_charge_pct=Decimal("0.00"),
    note="[chairside:CS-2025-0042] CareCredit deferred_12",
    procedures=(AppliedProcedure("848", Decimal("1750.00")), AppliedProcedure("847", Decimal("1250.00"))),
)
PLAN = {  # Open Dental's answer to the POST, as apipayplans.html shows one
    "PayPlanNum": 271, "PatNum": 72, "Guarantor": 72, "PayPlanDate": "2025-03-01", "APR": 0.0,
    "Note": "03/01/2025 - Date of Agreement: 03/01/2025, Total Amount: 3000.00, APR: 0, Total Cost of Loan: 3000.00, "
            "[chairside:CS-2025-0042] CareCredit deferred_12",
    "PlanNum": 0, "CompletedAmt": 0.0, "InsSubNum": 0, "PaySchedule": "Monthly", "NumberOfPayments": 0,
    "PayAmt": 208.34, "DownPayment": 500.0, "IsClosed": "false", "PlanCategory": 0, "planCategory": "",
    "IsDynamic": "true", "ChargeFrequency": "Monthly", "DatePayPlanStart": "2025-04-01", "IsLocked": "false",
    "DateInterestStart": "0001-01-01", "DynamicPayPlanTPOption": "AwaitComplete", "principalAmount": 3000.0,
    "SheetDefNum": 0,
}


def response(status, body, headers=None):
    result = requests.Response()
    result.status_code = status
    result._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    result.headers.update(headers or {})
    return result


class Wire:
    """A session that records each request, prepared as requests would send it, and
    answers from a list (a response, an exception, or a function of the request)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def request(self, method, url, **kwargs):
        prepared = requests.Request(method, url, params=kwargs.get("params"), data=kwargs.get("data"),
                                    headers=kwargs.get("headers")).prepare()
        self.sent.append(prepared)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(prepared) if callable(answer) else answer


def client(*answers, key="cust-KEY-123"):
    wire = Wire(*answers)
    return OpenDentalClient("https://api.opendental.com/api/v1/", key, developer_key="dev-KEY-9", session=wire), wire


# --- the requests, against the documentation ---------------------------------------------


def test_the_plan_is_posted_as_a_dynamic_plan_with_the_documented_fields_and_formats():
    od, wire = client(response(201, PLAN))
    od.create_payment_agreement(REQUEST)
    [sent] = wire.sent
    assert (sent.method, sent.url) == ("POST", "https://api.opendental.com/api/v1/payplans/Dynamic")
    assert sent.headers["Authorization"] == "ODFHIR dev-KEY-9/cust-KEY-123"
    assert sent.headers["Content-Type"] == "application/json"
    body = json.loads(sent.body, parse_float=Decimal)
    assert body == {
        "PatNum": 72, "Guarantor": 72, "PayPlanDate": "2025-03-01", "APR": Decimal("0.00"), "IsLocked": "false",
        "DownPayment": Decimal("500.00"), "ChargeFrequency": "Monthly", "DatePayPlanStart": "2025-04-01",
        "PayAmt": Decimal("208.34"), "DynamicPayPlanTPOption": "AwaitComplete", "procNums": [848, 847],
        "Note": "[chairside:CS-2025-0042] CareCredit deferred_12",
    }
    # PascalCase but for the documented procNums; ids and procNums as JSON numbers; no
    # NumberOfPayments (PayAmt or NumberOfPayments, never both); money as JSON numbers
    # written with exactly their cents, never through a float.
    assert all(re.match(r"^[A-Z][A-Za-z_]*$", k) for k in body if k != "procNums")
    assert b'"PayAmt":208.34' in sent.body and b'"DownPayment":500.00' in sent.body and b'"procNums":[848,847]' in sent.body
    assert "NumberOfPayments" not in body
    for name in ("PayPlanDate", "DatePayPlanStart"):
        assert re.match(r"^\d{4}-\d{2}-\d{2}$", body[name])
    assert "[chairside:CS-2025-0042]" in body["Note"]


def test_a_plan_with_interest_is_locked_as_open_dental_requires():
    od, wire = client(response(201, {**PLAN, "APR": 17.9, "IsLocked": "true", "PayAmt": 90.26}))
    od.create_payment_agreement(AgreementRequest(**{**REQUEST.__dict__, "annual_finance_charge_pct": Decimal("17.90"),
                                                    "payment_amount": Decimal("90.26")}))
    body = json.loads(wire.sent[0].body)
    assert (body["IsLocked"], body["APR"]) == ("true", 17.9)
    assert b'"APR":17.90' in wire.sent[0].body


def test_reads_send_the_documented_queries_and_no_body():
    od, wire = client(response(200, []), response(200, []), response(200, []))
    od.list_payment_agreements("72")
    od.list_ledger_notes("15")
    od.get_treatment_plans("72")
    assert [s.url for s in wire.sent] == [
        "https://api.opendental.com/api/v1/payplans?Guarantor=72",
        "https://api.opendental.com/api/v1/commlogs?PatNum=15",
        "https://api.opendental.com/api/v1/treatplans?PatNum=72",
    ]
    assert all(s.method == "GET" and s.body is None and "Content-Type" not in s.headers for s in wire.sent)


def test_the_commlog_is_a_note_for_the_record():
    made = {"CommlogNum": 14, "PatNum": 30, "CommDateTime": "2025-01-21 11:15:00", "CommType": "239", "commType": "Misc",
            "Note": "[chairside:CS-1] written", "Mode_": "None", "SentOrReceived": "Neither", "UserNum": 0,
            "DateTStamp": "2025-01-21 11:23:27", "CommSource": "User", "ProgramNum": 0,
            "DateTEntry": "2025-01-21 11:20:34", "ReferralNum": 0}
    od, wire = client(response(201, made))
    note = od.create_ledger_note("30", LedgerNoteType.BILLING_STATEMENT, "[chairside:CS-1] written")
    assert json.loads(wire.sent[0].body) == {"PatNum": 30, "Note": "[chairside:CS-1] written", "Mode_": "None", "SentOrReceived": "Neither"}
    assert (wire.sent[0].method, wire.sent[0].url) == ("POST", "https://api.opendental.com/api/v1/commlogs")
    assert (note.note_id, note.patient_id, note.type, note.text) == ("14", "30", LedgerNoteType.ACCOUNT, "[chairside:CS-1] written")


def test_an_id_that_is_not_a_number_never_reaches_a_url():
    od, wire = client()
    with pytest.raises(NotFoundError) as raised:
        od.get_patient("Smith, Jane")
    assert wire.sent == [] and "Smith" not in str(raised.value)


# --- Open Dental's answers ------------------------------------------------------------------


def test_a_plan_reads_back_with_the_number_of_payments_open_dental_will_charge():
    od, _ = client(response(200, [PLAN, {**PLAN, "PayPlanNum": 272, "IsClosed": "true"},
                                  {**PLAN, "PayPlanNum": 273, "PlanNum": 3, "InsSubNum": 13}]))
    first, closed = od.list_payment_agreements("72")  # the insurance plan (PlanNum, InsSubNum > 0) is not the account's
    assert (first.agreement_id, first.guarantor_id, first.status, first.interval) == ("271", "72", "active", Interval.MONTHLY)
    assert (first.total_agreed_amount, first.down_payment, first.payment_amount) == (Decimal("3000.00"), Decimal("500.00"), Decimal("208.34"))
    assert (first.number_of_payments, first.first_payment_due, first.annual_finance_charge_pct) == (12, date(2025, 4, 1), Decimal("0.00"))
    assert "[chairside:CS-2025-0042]" in first.note and first.product == "opendental" and first.patient_ids == ("72",)
    assert closed.status == "inactive"


def test_money_is_read_exactly_whether_open_dental_sends_a_number_or_a_string():
    procedure = {"ProcNum": 848, "PatNum": 72, "ProcFee": "130.00", "ProcStatus": "C", "procCode": "D2391",
                 "ToothNum": "30", "Surf": "O"}
    plans = [{"TreatPlanNum": 5, "PatNum": 72, "TPStatus": "Active"}, {"TreatPlanNum": 6, "PatNum": 72, "TPStatus": "Inactive"}]
    od, _ = client(response(200, plans), response(200, [{"TreatPlanAttachNum": 1, "TreatPlanNum": 5, "ProcNum": 848}]),
                   response(200, [procedure]))
    active, inactive = od.get_treatment_plans("72")
    [proc] = active.procedures
    assert (active.status, inactive.status, inactive.procedures) == ("accepted", "inactive", ())
    assert (proc.fee, proc.procedure_id, proc.posted, proc.balance, proc.code, proc.tooth, proc.surface) == (
        Decimal("130.00"), "848", True, Decimal("130.00"), "D2391", "30", "O")
    od, _ = client(response(200, [{**PLAN, "PayAmt": "208.34", "DownPayment": 500, "principalAmount": "3000"}]))
    [plan] = od.list_payment_agreements("72")
    assert (plan.payment_amount, plan.down_payment, plan.total_agreed_amount) == (Decimal("208.34"), Decimal("500.00"), Decimal("3000.00"))


def test_a_patient_in_no_clinic_has_clinic_num_0():
    patient = {"PatNum": 15, "Guarantor": 11, "FName": "Jane", "LName": "Doe", "Birthdate": "1980-01-02",
               "WirelessPhone": "", "HmPhone": "(503)555-0100", "Email": "jane@example.com", "Address": "1 Main",
               "City": "Salem", "State": "OR", "Zip": "97301", "ClinicNum": 0}
    od, _ = client(response(200, patient), response(200, {**patient, "ClinicNum": 4}), response(200, {**patient, "ClinicNum": "x"}))
    first = od.get_patient("15")
    assert (first.clinic_id, first.guarantor_id, first.phone, first.birth_date) == ("", "11", "(503)555-0100", date(1980, 1, 2))
    assert od.get_patient("15").clinic_id == "4"
    with pytest.raises(TransientPartnerError, match="could not be read"):
        od.get_patient("15")  # a ClinicNum that is no number is never read as some clinic


def test_every_page_of_a_list_is_read():
    page1 = [{"CommlogNum": n, "PatNum": 15, "Note": "Appointment reminder"} for n in range(100)]
    od, wire = client(response(200, page1), response(200, [{"CommlogNum": 500, "PatNum": 15, "Note": "[chairside:CS-9]"}]))
    notes = od.list_ledger_notes("15")
    assert len(notes) == 101 and notes[-1].text == "[chairside:CS-9]"
    assert wire.sent[1].url == "https://api.opendental.com/api/v1/commlogs?PatNum=15&Offset=100"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, b"This procedure is already linked to a payment plan.", PermanentPartnerError,
         "Open Dental rejected the payment plan: This procedure is already linked to a payment plan. Find the plan "
         "the procedure is on in the patient's Account module, take the procedure off it (or close that plan) in "
         "Open Dental, then resume this case."),
        (400, b'"Down payment must be less than or equal to total amount."', PermanentPartnerError,
         "Open Dental rejected the payment plan: Down payment must be less than or equal to total amount"),
        (401, b"This API key does not have the PayPlans permission.", PermanentPartnerError,
         "Open Dental refused the payment plan (HTTP 401: This API key does not have the PayPlans permission): this "
         "location's customer key needs the PayPlans permission in Open Dental's API setup, or the developer or "
         "customer key is wrong or disabled; check this location's Open Dental connection"),
        (404, b"Patient not found.", NotFoundError, "Open Dental could not find the payment plan (HTTP 404: Patient not found)"),
        (410, b"Deprecated.", PermanentPartnerError,
         "Open Dental no longer offers the call Chairside made for the payment plan (HTTP 410 Gone: Deprecated); Chairside needs an update"),
        (400, b"The eConnector is not running.", TransientPartnerError,
         "Open Dental cannot reach the office's database (HTTP 400: The eConnector is not running)"),
        (400, b"The request to the office timed out.", AmbiguousWriteError,
         "Open Dental's request to the office timed out (HTTP 400: The request to the office timed out); the payment "
         "plan may or may not have been saved: look it up before writing again"),
        (504, b"Gateway Timeout", AmbiguousWriteError,
         "Open Dental is unavailable (HTTP 504); the payment plan may or may not have been saved: look it up before writing again"),
        (429, b"Too many requests.", RateLimited,
         "Open Dental is limiting this customer key's requests (HTTP 429): nothing was done; it asked us to retry in 1 s"),
        (400, b"<html><body>Bad Request</body></html>", PermanentPartnerError, "Open Dental rejected the payment plan (HTTP 400)"),
    ],
)
def test_open_dentals_refusals_become_errors_a_clerk_can_act_on(status, body, error, message):
    od, _ = client(response(status, body, {"Retry-After": "1"} if status == 429 else None))
    with pytest.raises(error) as raised:
        od.create_payment_agreement(REQUEST)
    assert type(raised.value) is error and str(raised.value) == message


def test_the_permission_named_follows_the_call():
    od, _ = client(response(401, b"This API key does not have the Comm permission."), response(401, b"Bad key."))
    with pytest.raises(PermanentPartnerError, match="customer key needs the Comm permission"):
        od.create_ledger_note("15", LedgerNoteType.ACCOUNT, "[chairside:CS-1]")
    with pytest.raises(PermanentPartnerError, match="customer key needs the Read All permission"):
        od.get_patient("15")


def test_a_504_on_a_read_is_worth_retrying():
    od, _ = client(response(504, b""))
    with pytest.raises(TransientPartnerError) as raised:
        od.list_payment_agreements("72")
    assert not isinstance(raised.value, AmbiguousWriteError)


def test_a_commlog_created_by_a_version_before_23_3_7_is_found_by_its_text():
    od, wire = client(response(201, b""), response(200, [{"CommlogNum": 9, "PatNum": 15, "Note": "[chairside:CS-2] x"}]))
    note = od.create_ledger_note("15", LedgerNoteType.ACCOUNT, "[chairside:CS-2] x")
    assert note.note_id == "9" and [s.method for s in wire.sent] == ["POST", "GET"]


def test_describe_reads_the_version_and_names_the_database_by_the_keys_id_never_the_key():
    od, wire = client(response(200, [{"PrefNum": 1105, "PrefName": "ProgramVersion", "ValueString": "24.3.36.0"}]))
    info = od.describe()
    assert wire.sent[0].url == "https://api.opendental.com/api/v1/preferences?PrefName=ProgramVersion"
    assert (info.product, info.version) == ("opendental", "24.3.36.0")
    assert info.database_id == identity.key_id("cust-KEY-123") and "cust-KEY-123" not in info.database_id
    assert set(info.capabilities) == {"payment_agreements", "ledger_notes", "several_plans_per_account", "procedure_plans"}
    assert "KEY" not in repr(od)


def test_the_identity_is_the_customer_keys_id():
    name = identity.practice_database("https://api.opendental.com/api/v1", "cust-KEY-123")
    assert re.match(r"^key-[0-9a-f]{20}$", name) and "cust" not in name
    # The same office whichever address reaches it; another key, another name; no key, none.
    assert identity.practice_database("http://localhost:30222/api/v1", " cust-KEY-123 ") == name
    assert identity.practice_database("https://api.opendental.com/api/v1", "cust-KEY-124") != name
    assert identity.practice_database("https://api.opendental.com/api/v1", "") == ""
