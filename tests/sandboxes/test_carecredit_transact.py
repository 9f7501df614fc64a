"""The CareCredit sandbox's money over raw HTTP (no Chairside client): the transact wire,
the lookup, the settlement report's shape, fee rates, validation and the control API."""

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from sandboxes.carecredit.transact import DEFAULT_FEE_RATES, fee_for

from tests.sandboxes.test_carecredit_sandbox import api, valid_body

NY = ZoneInfo("America/New_York")
MERCHANT = "5348120000000001"


@pytest.fixture
def day(cc_sandbox):
    """Tomorrow at 10:00 in New York on the sandbox clock (the lender's business day)."""
    now = requests.get(f"{cc_sandbox.base_url}/_sandbox/clock", timeout=5).json()["now"]
    tomorrow = datetime.fromisoformat(now).astimezone(NY).date() + timedelta(days=1)
    moment = datetime.combine(tomorrow, time(10), NY).astimezone(timezone.utc).isoformat()
    requests.post(f"{cc_sandbox.base_url}/_sandbox/clock", json={"now": moment}, timeout=5).raise_for_status()
    return tomorrow


@pytest.fixture
def application_id(cc_sandbox, day):
    created = api(cc_sandbox, "POST", "/v1/applications", json=valid_body(requested_amount="1500.00")).json()
    requests.post(f"{cc_sandbox.base_url}/_sandbox/clock", json={"advance_seconds": 1}, timeout=5).raise_for_status()
    return created["application_id"]


def purchase_body(application_id, **changes):
    body = {
        "action": "AUTH_SETTLE", "clientTransId": "case-1-purchase", "merchantNumber": MERCHANT,
        "applicationId": application_id, "reference": "case-1", "amount": "1000.00", "promotionCode": "DI12",
    }
    body.update(changes)
    return body


def test_the_default_fee_table_is_the_specs_example_rates():
    assert {code: str(rate) for code, rate in DEFAULT_FEE_RATES.items()} == {
        "DI6": "5.90", "DI12": "9.90", "DI18": "12.90", "DI24": "14.90",
        "RA24": "6.90", "RA36": "7.90", "RA48": "8.90", "RA60": "9.90",
    }
    assert fee_for(Decimal("333.33"), Decimal("5.90")) == Decimal("19.67")  # 19.666...: half-up
    assert fee_for(Decimal("100.50"), Decimal("9.90")) == Decimal("9.95")  # 9.9495 -> 9.95


def test_the_decision_carries_expires_on(cc_sandbox, application_id, day):
    decision = api(cc_sandbox, "GET", f"/v1/applications/{application_id}").json()

    assert decision["status"] == "APPROVED"
    assert decision["expires_on"] == (day + timedelta(days=30)).isoformat()


def test_approval_validity_is_a_run_time_setting(cc_sandbox, day):
    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"approval_valid_days": 7}, timeout=5).raise_for_status()
    created = api(cc_sandbox, "POST", "/v1/applications", json=valid_body()).json()
    requests.post(f"{cc_sandbox.base_url}/_sandbox/clock", json={"advance_seconds": 1}, timeout=5).raise_for_status()

    decision = api(cc_sandbox, "GET", f"/v1/applications/{created['application_id']}").json()

    assert decision["expires_on"] == (day + timedelta(days=7)).isoformat()


def test_a_purchase_answers_the_transaction_and_the_same_key_answers_it_again(cc_sandbox, application_id, day):
    first = api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id))
    second = api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id))
    lookup = api(cc_sandbox, "GET", "/v1/credit/transactions",
                 params={"merchantNumber": MERCHANT, "clientTransId": "case-1-purchase"})

    assert (first.status_code, second.status_code) == (201, 200)
    body = first.json()
    assert {k: body[k] for k in ("type", "status", "amount", "promotionCode", "businessDate", "declineCode")} == {
        "type": "PURCHASE", "status": "SETTLED", "amount": "1000.00", "promotionCode": "DI12",
        "businessDate": day.isoformat(), "declineCode": None,
    }
    assert second.json() == body
    assert lookup.json() == {"transactions": [body]}
    assert [t["fee"] for t in cc_sandbox.app.transactions()] == ["99.00"]


def test_a_key_reused_with_another_request_is_a_409(cc_sandbox, application_id, day):
    api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id))

    reused = api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id, amount="999.00"))

    assert (reused.status_code, reused.json()["error"]) == (409, "client_trans_id_reused")
    assert len(cc_sandbox.app.transactions()) == 1


def test_keys_are_per_merchant(cc_sandbox, application_id, day):
    api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id))

    other = api(cc_sandbox, "GET", "/v1/credit/transactions",
                params={"merchantNumber": "5348120000000999", "clientTransId": "case-1-purchase"})
    foreign = api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id, merchantNumber="5348120000000999"))

    assert other.json() == {"transactions": []}
    assert (foreign.status_code, foreign.json()["error"]) == (422, "application_not_found")


def test_unreadable_transactions_are_400s_naming_each_field(cc_sandbox, day):
    response = api(cc_sandbox, "POST", "/v1/credit/transact", json={
        "action": "AUTH_SETTLE", "merchantNumber": "", "clientTransId": "x" * 65, "amount": 12.5,
    })

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {
        "merchantNumber", "clientTransId", "amount", "applicationId", "reference", "promotionCode",
    }
    bad_action = api(cc_sandbox, "POST", "/v1/credit/transact", json={"action": "CAPTURE"})
    assert bad_action.json()["fields"] == {"action": "must be AUTH_SETTLE, VOID or REFUND"}
    assert cc_sandbox.app.transactions() == []


def test_the_money_routes_need_a_token(cc_sandbox, day):
    for method, path in (
        ("POST", "/v1/credit/transact"),
        ("GET", "/v1/credit/transactions?merchantNumber=m&clientTransId=k"),
        ("GET", f"/v1/settlement/reports/{MERCHANT}/{day.isoformat()}"),
    ):
        assert requests.request(method, f"{cc_sandbox.base_url}{path}", timeout=5).status_code == 401


def test_an_unknown_transaction_is_a_404(cc_sandbox, day):
    response = api(cc_sandbox, "POST", "/v1/credit/transact",
                   json={"action": "VOID", "merchantNumber": MERCHANT, "transactionId": "txn_nope"})

    assert (response.status_code, response.json()["error"]) == (404, "transaction_not_found")


def test_a_refund_over_the_remainder_names_what_is_left(cc_sandbox, application_id, day):
    purchase = api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id)).json()
    refund = {"action": "REFUND", "clientTransId": "case-1-refund-1", "merchantNumber": MERCHANT,
              "transactionId": purchase["transactionId"], "amount": "1000.01"}

    response = api(cc_sandbox, "POST", "/v1/credit/transact", json=refund)

    assert response.status_code == 422
    assert {k: response.json()[k] for k in ("error", "remainingAmount")} == {
        "error": "refund_exceeds_remaining", "remainingAmount": "1000.00",
    }


def test_the_report_shape_and_a_bad_date(cc_sandbox, application_id, day):
    api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id))

    report = api(cc_sandbox, "GET", f"/v1/settlement/reports/{MERCHANT}/{day.isoformat()}").json()
    yesterday = api(cc_sandbox, "GET", f"/v1/settlement/reports/{MERCHANT}/{(day - timedelta(days=1)).isoformat()}").json()
    bad = api(cc_sandbox, "GET", f"/v1/settlement/reports/{MERCHANT}/2026-02-30")

    assert report["closed"] is False and yesterday["closed"] is True
    assert report["totals"] == {"purchases": "1000.00", "refunds": "0.00", "fees": "99.00", "net": "901.00"}
    assert [(line["amount"], line["fee"], line["net"]) for line in report["transactions"]] == [("1000.00", "99.00", "901.00")]
    assert yesterday["transactions"] == []
    assert bad.status_code == 400


def test_fee_rates_are_set_per_merchant_and_a_reset_restores_the_default(cc_sandbox, day):
    url = f"{cc_sandbox.base_url}/_sandbox/merchants/{MERCHANT}/fee-rates"

    changed = requests.put(url, json={"DI12": "10.50"}, timeout=5)
    refused = requests.put(url, json={"DI13": "1.00", "DI6": "101.00"}, timeout=5)
    other = requests.get(f"{cc_sandbox.base_url}/_sandbox/merchants/another/fee-rates", timeout=5).json()
    requests.post(f"{cc_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()

    assert changed.json()["DI12"] == "10.50" and changed.json()["DI6"] == "5.90"
    assert refused.status_code == 400 and set(refused.json()["fields"]) == {"DI13", "DI6"}
    assert other["DI12"] == "9.90"
    assert requests.get(url, timeout=5).json()["DI12"] == "9.90"


def test_a_fee_keeps_the_rate_of_the_moment_it_settled(cc_sandbox, application_id, day):
    url = f"{cc_sandbox.base_url}/_sandbox/merchants/{MERCHANT}/fee-rates"
    api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id, amount="500.00"))
    requests.put(url, json={"DI12": "1.00"}, timeout=5).raise_for_status()
    api(cc_sandbox, "POST", "/v1/credit/transact", json=purchase_body(application_id, amount="500.00", clientTransId="k2"))

    report = api(cc_sandbox, "GET", f"/v1/settlement/reports/{MERCHANT}/{day.isoformat()}").json()

    assert [line["fee"] for line in report["transactions"]] == ["49.50", "5.00"]
    assert report["totals"]["fees"] == "54.50"
