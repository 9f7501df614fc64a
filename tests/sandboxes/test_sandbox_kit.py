"""The sandboxes' shared kit: the injectable clock (moved over the control route), and
what every sandbox gets from it (faults, the request log, health) over real HTTP."""

import requests

from sandboxes.dentrix import serve_in_thread as serve_dentrix
from sandboxes.twilio import serve_in_thread as serve_twilio


def cc_token(sandbox):
    config = sandbox.app.config
    response = requests.post(
        f"{sandbox.base_url}/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": config.client_secret},
        timeout=5,
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_application(sandbox, headers, last_name):
    body = {
        "merchant_number": "5348120000000001", "reference": f"ref-{last_name}", "requested_amount": "1000.00",
        "applicant": {
            "first_name": "Zelda", "last_name": last_name, "birth_date": "1971-03-09",
            "address": {"line1": "1 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
        },
    }
    response = requests.post(f"{sandbox.base_url}/v1/applications", json=body, headers=headers, timeout=5)
    assert response.status_code == 201
    return response.json()["application_id"]


def status_of(sandbox, headers, application_id):
    return requests.get(f"{sandbox.base_url}/v1/applications/{application_id}", headers=headers, timeout=5).json()["status"]


def test_advancing_the_clock_decides_a_pending_application_without_waiting(cc_sandbox, advance_clock):
    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"decision_delay": 60, "pending_delay": 600}, timeout=5)
    headers = cc_token(cc_sandbox)
    application_id = new_application(cc_sandbox, headers, "Pending-Lee")
    assert status_of(cc_sandbox, headers, application_id) == "APPLICATION_SENT"

    advance_clock(cc_sandbox, 61)
    assert status_of(cc_sandbox, headers, application_id) == "PENDING"

    advance_clock(cc_sandbox, 600)
    assert status_of(cc_sandbox, headers, application_id) == "APPROVED"


def test_the_clock_reports_moves_only_forward_and_resets(cc_sandbox, advance_clock):
    url = f"{cc_sandbox.base_url}/_sandbox/clock"
    assert requests.get(url, timeout=5).json()["offset_seconds"] == 0
    assert advance_clock(cc_sandbox, 90)["offset_seconds"] == 90

    backwards = requests.post(url, json={"now": "2000-01-01T00:00:00Z"}, timeout=5)
    negative = requests.post(url, json={"advance_seconds": -5}, timeout=5)
    jumped = requests.post(url, json={"now": "2100-01-01T00:00:00Z"}, timeout=5).json()
    assert (backwards.status_code, negative.status_code) == (400, 400)
    assert jumped["now"].startswith("2100-01-01T00:00:")

    requests.post(f"{cc_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    assert requests.get(url, timeout=5).json()["offset_seconds"] == 0


def test_the_dentrix_agreement_date_rule_follows_the_sandbox_clock(advance_clock):
    with serve_dentrix(port=0) as dentrix:
        advance_clock(dentrix, 3 * 86400)
        now = requests.get(f"{dentrix.base_url}/_sandbox/clock", timeout=5).json()["now"]
        body = {
            "agreement_date": now[:10], "interval": "monthly", "total_agreed_amount": "1200.00",
            "down_payment": "0.00", "payment_amount": "100.00", "number_of_payments": 12,
            "first_payment_due": now[:10], "annual_finance_charge_pct": "0.00", "note": "",
        }
        created = requests.post(
            f"{dentrix.base_url}/v1/accounts/1001/payment-agreements", json=body,
            headers={"X-API-Key": "sandbox"}, timeout=5,
        )
        # Three days ahead of the real date: only accepted because the sandbox's today moved.
        assert created.status_code == 201, created.text
        assert created.json()["created_at"][:10] == now[:10]


def test_every_sandbox_gets_the_kit_control_routes_and_faults():
    with serve_twilio(port=0) as twilio:
        base = twilio.base_url
        assert requests.get(f"{base}/_sandbox/health", timeout=5).json() == {"ok": True}
        requests.post(f"{base}/_sandbox/faults", json={"mode": "error", "status": 503}, timeout=5).raise_for_status()
        url = f"{base}/2010-04-01/Accounts/{twilio.app.account_sid}/Messages.json"
        faulted = requests.post(url, data={"To": "+15555550100", "Body": "hi"}, timeout=5)
        assert faulted.status_code == 503 and faulted.json()["code"] == 20500
        assert requests.get(f"{base}/_sandbox/requests", timeout=5).json() == [
            {"method": "POST", "path": url[len(base):], "status": 503, "fault": "error"}
        ]


def test_an_error_fault_says_refused_for_a_4xx_and_unavailable_for_a_5xx():
    with serve_dentrix(port=0, product="eaglesoft") as sandbox:
        url, key = sandbox.base_url, {"X-API-Key": "sandbox"}
        for status in (422, 503, 429):
            requests.post(f"{url}/_sandbox/faults", json={"mode": "error", "status": status}, timeout=5).raise_for_status()
        answers = [requests.get(f"{url}/v1/patients/1001", headers=key, timeout=5) for _ in range(3)]
    assert [(a.status_code, a.json()["error"]) for a in answers] == [
        (422, "The Eaglesoft sandbox refused the request (sandbox fault: HTTP 422)."),
        (503, "The Eaglesoft sandbox is temporarily unavailable (sandbox fault: HTTP 503)."),
        (429, "The Eaglesoft sandbox is temporarily unavailable (sandbox fault: HTTP 429)."),
    ]
