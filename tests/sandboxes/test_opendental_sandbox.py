"""The Open Dental sandbox over raw HTTP: Open Dental's conventions, its rules and their
messages, permissions, the throttle, the charges it posts, and its control routes.

One sandbox for the module, reset before each test (the throttle off unless a test turns
it on: the tests send requests back to back).
"""

import json
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from sandboxes.opendental import serve_in_thread

AUTH = {"Authorization": "ODFHIR sandbox-developer/sandbox-customer"}
NEW_PATIENT = {
    "first_name": "Omar", "last_name": "Okafor", "birth_date": "1990-05-06", "phone": "+15555550177",
    "email": "omar@example.com", "address": {"line1": "7 Birch St", "city": "Springfield", "state": "IL", "zip": "62701"},
    "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": "428.00"},
                   {"code": "D2950", "tooth": "3", "surface": "", "fee": "300.00"}],
}


@pytest.fixture(scope="module")
def running():
    sandbox = serve_in_thread(port=0, requests_per_second=0)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def od(running):
    requests.post(f"{running.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    return running


def api(od, method, path, body=None, params=None, headers=None, raw=None):
    kwargs = {"params": params, "headers": {**AUTH, **(headers or {})}, "timeout": 5}
    if raw is not None:
        kwargs["data"] = raw
    elif body is not None:
        kwargs["json"] = body
    return requests.request(method, f"{od.base_url}/api/v1{path}", **kwargs)


def control(od, method, path, body=None):
    response = requests.request(method, f"{od.base_url}/_sandbox{path}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def today(od) -> date:
    return od.app.clock.today()


def new_patient(od, **changes):
    return control(od, "POST", "/patients", {**NEW_PATIENT, **changes})


def plan_body(patient, **changes):
    return {"PatNum": patient["PatNum"], "procNums": patient["ProcNums"], "PayAmt": 100, **changes}


def refused(response, status=400):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


# --- the demo office and Open Dental's conventions ------------------------------------------


def test_the_demo_patients_are_the_lender_personas_on_their_active_plans(od):
    expected = {101: ("Thompson", 1680.0, 1), 102: ("Decline-Parker", 4150.0, 1), 103: ("Pending-Lee", 2710.0, 1),
                104: ("Partial-Nguyen", 2685.0, 1), 105: ("Refer-Garcia", 1365.0, 1), 106: ("Expire-Brown", 680.0, 1),
                107: ("Thompson", 705.0, 1), 108: ("Lindqvist", 1290.0, 2), 109: ("Moreau", 1780.0, 0)}
    for pat_num, (last_name, plan_total, clinic) in expected.items():
        patient = api(od, "GET", f"/patients/{pat_num}").json()
        [plan] = api(od, "GET", "/treatplans", params={"PatNum": pat_num}).json()
        attached = {a["ProcNum"] for a in api(od, "GET", "/treatplanattaches", params={"TreatPlanNum": plan["TreatPlanNum"]}).json()}
        procs = [p for p in api(od, "GET", "/procedurelogs", params={"PatNum": pat_num}).json() if p["ProcNum"] in attached]
        assert (patient["LName"], patient["ClinicNum"], plan["TPStatus"], plan["TreatPlanNum"]) == (last_name, clinic, "Active", pat_num + 400)
        assert sum(float(p["ProcFee"]) for p in procs) == plan_total and {p["ProcStatus"] for p in procs} == {"TP"}
        assert all(isinstance(p["ProcFee"], str) for p in procs)  # Open Dental sends ProcFee as a string
    assert api(od, "GET", "/patients/107").json()["Guarantor"] == 101


def test_keys_are_required_and_checked(od):
    assert "ODFHIR" in refused(requests.get(f"{od.base_url}/api/v1/patients/101", timeout=5), 401)
    wrong = api(od, "GET", "/patients/101", headers={"Authorization": "ODFHIR sandbox-developer/someone-else"})
    assert refused(wrong, 401) == "Invalid developer key or customer key, or the key is disabled."
    assert requests.get(f"{od.base_url}/_sandbox/health", timeout=5).json() == {"ok": True}  # control: no key


def test_a_write_without_its_permission_is_a_401_naming_it(od):
    control(od, "PUT", "/permissions", {"permissions": ["Read All", "Comm"]})
    patient = new_patient(od)
    assert refused(api(od, "POST", "/payplans/Dynamic", plan_body(patient)), 401) == "This API key does not have the PayPlans permission."
    assert api(od, "POST", "/commlogs", {"PatNum": 101, "Note": "x"}).status_code == 201
    control(od, "PUT", "/permissions", {"permissions": ["PayPlans"]})
    assert "Read All" in refused(api(od, "GET", "/patients/101"), 401)
    assert "Comm" in refused(api(od, "POST", "/commlogs", {"PatNum": 101, "Note": "x"}), 401)
    requests.post(f"{od.base_url}/_sandbox/reset", timeout=5)
    assert api(od, "GET", "/patients/101").status_code == 200


def test_the_deprecated_post_payplans_is_gone(od):
    assert refused(api(od, "POST", "/payplans", {"PatNum": 101, "principalAmount": 500, "PayAmt": 100}), 410) == (
        "PayPlans POST (create) is deprecated. Use PayPlans POST Dynamic.")


def test_unknown_records_and_routes_are_404_in_plain_text(od):
    assert refused(api(od, "GET", "/patients/999"), 404) == "Patient not found."
    assert refused(api(od, "GET", "/payplans/999"), 404) == "PayPlan not found."
    assert refused(api(od, "GET", "/nothing"), 404) == "Not found: GET /api/v1/nothing"


def test_a_body_must_say_it_is_json(od):
    response = api(od, "POST", "/commlogs", raw=b'{"PatNum": 101, "Note": "x"}', headers={"Content-Type": "text/plain"})
    assert refused(response) == "Content-Type must be application/json."


# --- PayPlans POST Dynamic --------------------------------------------------------------------


def test_a_dynamic_plan_is_stored_with_open_dentals_defaults_and_note(od):
    patient = new_patient(od)
    response = api(od, "POST", "/payplans/Dynamic", plan_body(patient, Note="line one\r\nline two"))
    assert response.status_code == 201
    plan = response.json()
    day = today(od)
    first = (day.replace(day=1) + timedelta(days=32)).replace(day=1)  # a month on (the day clamped to the month)
    assert response.headers["Location"].endswith(f"/api/v1/payplans/{plan['PayPlanNum']}")
    assert (plan["PatNum"], plan["Guarantor"], plan["PayPlanDate"], plan["ChargeFrequency"]) == (
        patient["PatNum"], patient["PatNum"], day.isoformat(), "Monthly")
    assert plan["DatePayPlanStart"][:7] == first.isoformat()[:7]
    assert (plan["IsLocked"], plan["IsDynamic"], plan["IsClosed"], plan["DynamicPayPlanTPOption"]) == ("true", "true", "false", "AwaitComplete")
    assert (plan["PayAmt"], plan["NumberOfPayments"], plan["principalAmount"], plan["DownPayment"], plan["APR"]) == (100.0, 0, 728.0, 0.0, 0.0)
    assert plan["Note"] == (f"{day:%m/%d/%Y} - Date of Agreement: {day:%m/%d/%Y}, Total Amount: 728.00, APR: 0, "
                            "Total Cost of Loan: 728.00, line one line two")
    assert [(l["LinkType"], l["FKey"]) for l in api(od, "GET", "/payplanlinks", params={"PayPlanNum": plan["PayPlanNum"]}).json()] == [
        ("Procedure", n) for n in patient["ProcNums"]]
    assert api(od, "GET", f"/payplans/{plan['PayPlanNum']}").json() == plan
    assert api(od, "GET", "/payplans", params={"Guarantor": patient["PatNum"]}).json() == [plan]


def test_a_number_of_payments_becomes_open_dentals_own_payment_rounded_up(od):
    """apipayplans.html's example: $728.00 of production, $100.00 down, 8 payments at 10 % → PayAmt 81.48."""
    patient = new_patient(od)
    plan = api(od, "POST", "/payplans/Dynamic", {"PatNum": patient["PatNum"], "procNums": patient["ProcNums"],
                                                 "NumberOfPayments": 8, "APR": 10, "DownPayment": 100,
                                                 "DatePayPlanStart": today(od).isoformat()}).json()
    assert (plan["PayAmt"], plan["NumberOfPayments"], plan["APR"], plan["DownPayment"]) == (81.48, 0, 10.0, 100.0)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"PatNum": None}, 400, "PatNum is required."),
        ({"PatNum": "abc"}, 400, "PatNum is invalid."),
        ({"PatNum": 999}, 404, "Patient not found."),
        ({"Guarantor": 999}, 404, "Guarantor not found."),
        ({"procNums": None}, 400, "procNums and/or adjNums is required."),
        ({"procNums": "1,2"}, 400, "procNums must be an array of ProcNums, in [1,2,3] format."),
        ({"procNums": [99999]}, 400, "Procedure 99999 not found."),
        ({"procNums": [901]}, 400, "Procedure 901 is not attached to patient {PatNum}."),
        ({"PayAmt": 100, "NumberOfPayments": 6}, 400, "Please choose either Number of Payments or Payment Amt."),
        ({"PayAmt": None}, 400, "Please enter a term or payment amount first. Payment cannot be 0. Term cannot be less than 1."),
        ({"PayAmt": None, "NumberOfPayments": -1}, 400, "Term cannot be less than 1."),
        ({"DownPayment": 728.01}, 400, "Down payment must be less than or equal to total amount."),
        ({"APR": 18, "IsLocked": "false"}, 400, "Payment plans with APR must be locked. Remove the APR or check the box for FullLock."),
        ({"APR": 18, "PayAmt": 10.92}, 400, "This payment plan will never be paid off. The interest being charged on each payment is greater than the payment amount."),
        ({"ChargeFrequency": "Biweekly"}, 400, 'ChargeFrequency must be "Weekly", "EveryOtherWeek", "Monthly", "Quarterly", or "OrdinalWeekday".'),
        ({"IsLocked": True}, 400, 'IsLocked must be "true" or "false".'),
        ({"PayPlanDate": "03/01/2025"}, 400, "PayPlanDate is invalid. Use yyyy-MM-dd."),
        ({"DynamicPayPlanTPOption": "None"}, 400, 'DynamicPayPlanTPOption must be "AwaitComplete", or "TreatAsComplete".'),
        ({"adjNums": [40]}, 400, "Adjustment 40 not found."),
    ],
)
def test_each_rule_answers_with_open_dentals_explanation_and_stores_nothing(od, change, status, message):
    patient = new_patient(od)
    body = {k: v for k, v in {**plan_body(patient), **change}.items() if v is not None}
    assert refused(api(od, "POST", "/payplans/Dynamic", body), status) == message.format(**patient)
    assert od.app.store.all("payplans") == [] and od.app.store.all("links") == []


def test_a_future_plan_date_is_refused_with_the_other_term_problems_together(od):
    patient = new_patient(od)
    body = plan_body(patient, PayPlanDate=(today(od) + timedelta(days=1)).isoformat(), DownPayment=1000)
    assert refused(api(od, "POST", "/payplans/Dynamic", body)) == (
        "Payment plan date cannot be set for the future. Down payment must be less than or equal to total amount.")


def test_a_procedure_already_on_an_open_plan_cannot_be_linked_again(od):
    patient = new_patient(od)
    first = api(od, "POST", "/payplans/Dynamic", plan_body(patient, procNums=patient["ProcNums"][:1])).json()
    assert refused(api(od, "POST", "/payplans/Dynamic", plan_body(patient))) == "This procedure is already linked to a payment plan."
    assert len(od.app.store.all("payplans")) == 1
    control(od, "PUT", f"/payplans/{first['PayPlanNum']}", {"IsClosed": "true"})  # a closed plan lets go of it
    assert api(od, "POST", "/payplans/Dynamic", plan_body(patient)).status_code == 201


def add_months(day: date, months: int) -> date:
    import calendar

    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def test_the_down_payment_is_charged_today_and_payments_once_the_work_is_done_and_due(od):
    patient = new_patient(od)  # procedures of 428.00 and 300.00
    made = today(od)
    first_due = made + timedelta(days=10)
    plan = api(od, "POST", "/payplans/Dynamic", plan_body(patient, DownPayment=500, PayAmt=100,
                                                          DatePayPlanStart=first_due.isoformat())).json()

    def charges():
        rows = api(od, "GET", "/payplancharges", params={"PayPlanNum": plan["PayPlanNum"]}).json()
        return [(c["Note"], c["ChargeDate"], c["Principal"], c["Interest"], c["FKey"]) for c in rows]

    down = [("Down Payment", made.isoformat(), 428.0, 0.0, patient["ProcNums"][0]),
            ("Down Payment", made.isoformat(), 72.0, 0.0, patient["ProcNums"][1])]
    assert charges() == down  # against the production in link order
    od.app.clock.advance(100 * 86400)
    assert charges() == down  # AwaitComplete: nothing while the procedures are only planned
    control(od, "POST", f"/patients/{patient['PatNum']}/post-production")
    assert charges() == down + [("", add_months(first_due, n).isoformat(), amount, 0.0, patient["ProcNums"][1])
                                for n, amount in enumerate((100.0, 100.0, 28.0))]
    assert api(od, "GET", f"/payplans/{plan['PayPlanNum']}").json()["CompletedAmt"] == 728.0


def test_treat_as_complete_charges_planned_work_as_it_comes_due(od):
    patient = new_patient(od)
    plan = api(od, "POST", "/payplans/Dynamic", plan_body(patient, PayAmt=400, APR=12, DynamicPayPlanTPOption="TreatAsComplete",
                                                          DatePayPlanStart=today(od).isoformat())).json()
    rows = api(od, "GET", "/payplancharges", params={"PayPlanNum": plan["PayPlanNum"]}).json()
    # Due today: 728.00 at 12 % → interest 7.28, principal 392.72, against the first procedure.
    assert [(c["ChargeDate"], c["Principal"], c["Interest"], c["FKey"]) for c in rows] == [
        (today(od).isoformat(), 392.72, 7.28, patient["ProcNums"][0])]
    od.app.clock.advance(40 * 86400)  # the next month: interest on 335.28 is 3.35; the rest of the first procedure, then the second
    rows = api(od, "GET", "/payplancharges", params={"PayPlanNum": plan["PayPlanNum"]}).json()
    assert [(c["Principal"], c["Interest"], c["FKey"]) for c in rows[1:]] == [
        (35.28, 3.35, patient["ProcNums"][0]), (300.0, 0.0, patient["ProcNums"][1])]


# --- commlogs --------------------------------------------------------------------------------


def test_a_commlog_gets_open_dentals_defaults(od):
    response = api(od, "POST", "/commlogs", {"PatNum": 101, "Note": "Left msg\non answering machine"})
    assert response.status_code == 201
    made = response.json()
    assert (made["PatNum"], made["Note"], made["Mode_"], made["SentOrReceived"], made["commType"], made["CommType"]) == (
        101, "Left msg on answering machine", "Phone", "Sent", "Misc", "239")
    assert made["CommlogNum"] == 8001 and api(od, "GET", "/commlogs", params={"PatNum": 101}).json() == [made]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"Note": "x"}, 400, "PatNum is required."),
        ({"PatNum": 101}, 400, "Note is required."),
        ({"PatNum": 999, "Note": "x"}, 404, "Patient not found."),
        ({"PatNum": 101, "Note": "x", "Mode_": "Fax"}, 400, 'Mode_ must be "None", "Email", "Mail", "Phone", "In Person", "Text", "Email and Text", or "Phone and Text".'),
        ({"PatNum": 101, "Note": "x", "SentOrReceived": "Both"}, 400, 'SentOrReceived must be "Neither", "Sent", or "Received".'),
        ({"PatNum": 101, "Note": "x", "commType": "Gossip"}, 400, "commType is invalid."),
        ({"PatNum": 101, "Note": "x", "CommDateTime": "2025-01-21T11:15"}, 400, "CommDateTime is invalid. Use yyyy-MM-dd HH:mm:ss."),
    ],
)
def test_each_commlog_rule(od, body, status, message):
    assert refused(api(od, "POST", "/commlogs", body), status) == message
    assert od.app.store.all("commlogs") == []


def test_lists_come_in_pages_of_a_hundred(od):
    control(od, "POST", "/patients/101/commlogs", {"count": 150})
    first = api(od, "GET", "/commlogs", params={"PatNum": 101}).json()
    second = api(od, "GET", "/commlogs", params={"PatNum": 101, "Offset": 100}).json()
    assert (len(first), len(second)) == (100, 50) and first[0]["CommlogNum"] == 8001 and second[-1]["CommlogNum"] == 8150
    assert len(api(od, "GET", "/commlogs", params={"PatNum": 101, "Limit": 500}).json()) == 100


# --- the throttle ------------------------------------------------------------------------------


def test_one_request_a_second_per_customer_key_the_excess_refused_with_retry_after(od):
    control(od, "PUT", "/throttle", {"requests_per_second": 1})
    assert api(od, "GET", "/patients/101").status_code == 200
    second = api(od, "GET", "/patients/101")
    assert refused(second, 429) == "Too many requests: this customer key is limited to 1 request(s) per second."
    assert second.headers["Retry-After"] == "1"
    od.app.clock.advance(1.0)
    assert api(od, "GET", "/patients/101").status_code == 200
    # A refused key (a wrong one) takes no slot; the log says when and for which key, never the key.
    log = requests.get(f"{od.base_url}/_sandbox/requests", timeout=5).json()
    assert [r["status"] for r in log] == [200, 429, 200]
    assert log[2]["at"] - log[0]["at"] >= 1.0 and log[0]["key"] and "sandbox-customer" not in json.dumps(log)


def test_a_key_with_read_all_only_gets_one_request_every_five_seconds(od):
    control(od, "PUT", "/throttle", {"requests_per_second": 1})
    control(od, "PUT", "/permissions", {"permissions": ["Read All"]})
    assert api(od, "GET", "/patients/101").status_code == 200
    od.app.clock.advance(1.5)
    assert api(od, "GET", "/patients/101").headers["Retry-After"] == "4"
    od.app.clock.advance(3.6)
    assert api(od, "GET", "/patients/101").status_code == 200


def test_the_local_api_is_not_throttled(od):
    control(od, "PUT", "/throttle", {"requests_per_second": 0})
    assert [api(od, "GET", "/patients/101").status_code for _ in range(5)] == [200] * 5


# --- control routes, faults, journal, command line -------------------------------------------


def test_a_new_patient_from_the_dentrix_sandboxes_body(od):
    created = new_patient(od, clinic_id="")
    assert created == {"PatNum": 1001, "Guarantor": 1001, "TreatPlanNum": 5001, "ProcNums": [9001, 9002]}
    patient = api(od, "GET", "/patients/1001").json()
    assert (patient["FName"], patient["LName"], patient["ClinicNum"], patient["WirelessPhone"]) == ("Omar", "Okafor", 0, "+15555550177")
    child = new_patient(od, first_name="Ola", guarantor_id="1001", procedures=[])
    assert (child["Guarantor"], child["TreatPlanNum"], child["ProcNums"]) == (1001, None, [])
    bad = requests.post(f"{od.base_url}/_sandbox/patients", json={**NEW_PATIENT, "guarantor_id": "1002",
                                                                 "procedures": [{"code": "2740", "fee": "0"}]}, timeout=5)
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"guarantor_id", "procedures[0].code", "procedures[0].fee"}


def test_post_production_completes_the_active_plans_procedures(od):
    done = control(od, "POST", "/patients/101/post-production")
    assert done == {"PatNum": 101, "ProcNums": [901, 902, 903]}
    assert {p["ProcStatus"] for p in api(od, "GET", "/procedurelogs", params={"PatNum": 101}).json()} == {"C"}
    control(od, "PUT", "/treatplans/502", {"TPStatus": "Inactive"})
    assert api(od, "GET", "/treatplans", params={"PatNum": 102}).json()[0]["TPStatus"] == "Inactive"


def test_a_dropped_answer_still_commits_the_plan(od):
    patient = new_patient(od)
    control(od, "POST", "/faults", {"method": "POST", "path_prefix": "/api/v1/payplans", "mode": "drop"})
    with pytest.raises(requests.ConnectionError):
        api(od, "POST", "/payplans/Dynamic", plan_body(patient))
    assert len(api(od, "GET", "/payplans", params={"PatNum": patient["PatNum"]}).json()) == 1


def test_the_journal_replays_after_a_restart(tmp_path):
    journal = tmp_path / "od.jsonl"
    first = serve_in_thread(port=0, state_file=journal, requests_per_second=0)
    try:
        patient = new_patient(first)
        plan = api(first, "POST", "/payplans/Dynamic", plan_body(patient, DownPayment=100)).json()
        note = api(first, "POST", "/commlogs", {"PatNum": patient["PatNum"], "Note": "[chairside:CS-1] kept"}).json()
    finally:
        first.stop()
    second = serve_in_thread(port=0, state_file=journal, requests_per_second=0)
    try:
        assert api(second, "GET", f"/payplans/{plan['PayPlanNum']}").json() == plan
        assert api(second, "GET", "/commlogs", params={"PatNum": patient["PatNum"]}).json() == [note]
        assert len(api(second, "GET", "/payplancharges", params={"PayPlanNum": plan["PayPlanNum"]}).json()) == 1
        assert new_patient(second)["PatNum"] == 1002  # new numbers continue after the replayed ones
        requests.post(f"{second.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    finally:
        second.stop()
    assert journal.read_text() == ""


def test_command_line_serves_with_the_keys_from_its_environment():
    env = {**os.environ, "OPENDENTAL_SANDBOX_DEVELOPER_KEY": "dev-cli", "OPENDENTAL_SANDBOX_CUSTOMER_KEY": "cust-cli"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.opendental", "--host", "127.0.0.1", "--port", "0"],
        cwd=Path(__file__).resolve().parents[2], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("Open Dental sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        answer = requests.get(f"{url}/api/v1/patients/101", headers={"Authorization": "ODFHIR dev-cli/cust-cli"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["FName"] == "Ava"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
