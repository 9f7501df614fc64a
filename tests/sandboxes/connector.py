"""Helpers for the connector-product sandbox tests: bodies and calls over plain HTTP."""

from datetime import date, timedelta

import requests

KEY = {"X-API-Key": "sandbox"}


def today() -> date:
    return date.today()  # at each call, never at import: a run may cross midnight


def terms(**changes) -> dict:
    """v1's body: 1680.00 with 180.00 down, 1500.00 over 12 at 0 % → 125.00."""
    agreed = today()
    body = {
        "agreement_date": agreed.isoformat(), "interval": "monthly", "total_agreed_amount": "1680.00",
        "down_payment": "180.00", "payment_amount": "125.00", "number_of_payments": 12,
        "first_payment_due": (agreed + timedelta(days=30)).isoformat(), "annual_finance_charge_pct": "0.00",
        "note": "[chairside:CS-0001] CareCredit deferred 12",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def call(server, method, path, body=None, *, key=True):
    return requests.request(method, f"{server.base_url}{path}", json=body, headers=KEY if key else {}, timeout=5)


def create(server, guarantor_id, body):
    return call(server, "POST", f"/v1/accounts/{guarantor_id}/payment-agreements", body)


def records(server, guarantor_id):
    answer = call(server, "GET", f"/v1/accounts/{guarantor_id}/payment-agreements")
    assert answer.status_code == 200, answer.text
    return answer.json()


def post_production(server, patient_id):
    answer = call(server, "POST", f"/_sandbox/patients/{patient_id}/post-production", key=False)
    assert answer.status_code == 200, answer.text
    return answer.json()


def edit(server, agreement_id, changes):
    return call(server, "POST", f"/_sandbox/payment-agreements/{agreement_id}/edit", changes, key=False)


def set_status(server, agreement_id, status):
    return call(server, "PUT", f"/_sandbox/payment-agreements/{agreement_id}", {"status": status}, key=False)


def advance(server, days):
    answer = requests.post(f"{server.base_url}/_sandbox/clock", json={"advance_seconds": days * 86400}, timeout=5)
    answer.raise_for_status()


def refused(answer, status, message, fields=None):
    """The answer is `status` with exactly this one-line error (and these field problems)."""
    assert answer.status_code == status, answer.text
    expected = {"error": message}
    if fields is not None:
        expected["fields"] = fields
    assert answer.json() == expected
