"""The CareCredit sandbox itself: its rules, its auth, its control API and its CLI."""

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

import sandboxes
from sandboxes.carecredit import (
    SandboxConfig,
    credit_limit_for,
    persona_for,
    promotions_for,
    validate_application,
)

D = Decimal


def valid_body(**changes):
    body = {
        "merchant_number": "5348120000000001",
        "reference": "case-1",
        "requested_amount": "1000.00",
        "callback_url": "https://chairside.example/api/v1/webhooks/carecredit/",
        "applicant": {
            "first_name": "Zelda",
            "last_name": "Smith",
            "birth_date": "1971-03-09",
            "phone": "",
            "email": "",
            "address": {"line1": "742 Evergreen Terrace", "city": "Shelbyville", "state": "IL", "zip": "62565"},
        },
    }
    body.update(changes)
    return body


def token(sandbox):
    config = sandbox.app.config
    response = requests.post(
        f"{sandbox.base_url}/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": config.client_secret},
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()


def api(sandbox, method, path, access_token=None, *, headers=None, **kwargs):
    headers = {**(headers or {}), "Authorization": f"Bearer {access_token or token(sandbox)['access_token']}"}
    return requests.request(method, f"{sandbox.base_url}{path}", headers=headers, timeout=5, **kwargs)


# --- pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surname, persona",
    [
        ("Declinewski", "decline"), ("DECLINE", "decline"), ("pending", "pending"), ("Partial-Jones", "partial"),
        ("Referred", "refer"), ("  expire", "expire"), ("Smith", "approve"), ("Expiry", "approve"), ("ODecline", "approve"),
    ],
)
def test_persona_comes_from_the_surname_prefix(surname, persona):
    assert persona_for(surname) == persona


@pytest.mark.parametrize(
    "approved, limit",
    [("1500.00", "1500.00"), ("1500.01", "2000.00"), ("1234.56", "1500.00"), ("0.01", "500.00"), ("500.00", "500.00")],
)
def test_credit_limit_is_rounded_up_to_a_multiple_of_500(approved, limit):
    assert credit_limit_for(D(approved)) == D(limit)


def test_promotion_thresholds():
    assert promotions_for(D("199.99"), D("17.90")) == []
    assert [p["code"] for p in promotions_for(D("200.00"), D("17.90"))] == ["DI6", "DI12", "DI18", "DI24"]
    assert promotions_for(D("1000.00"), D("17.90"))[5] == {
        "code": "RA36", "type": "REDUCED_APR", "months": 36, "apr": "17.90", "min_purchase": "1000.00",
    }


def test_a_valid_application_has_no_errors():
    assert validate_application(valid_body()) == {}
    assert validate_application(valid_body(callback_url=None)) == {}


def test_validation_names_each_bad_field_without_echoing_values():
    body = valid_body(
        merchant_number=" ",
        requested_amount="12.345",
        callback_url="ftp://chairside.example/hook",
    )
    body["applicant"] = {"first_name": "", "last_name": "Smith", "birth_date": "09/03/1971", "address": {"zip": "ABCDE"}}

    errors = validate_application(body)

    assert errors == {
        "merchant_number": "is required",
        "requested_amount": 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"',
        "callback_url": "must be an http or https URL",
        "applicant.first_name": "is required",
        "applicant.birth_date": "must be a date in the past, YYYY-MM-DD",
        "applicant.address.line1": "is required",
        "applicant.address.city": "is required",
        "applicant.address.state": "must be a 2-letter state code",
        "applicant.address.zip": "must be 5 digits",
    }
    assert "ABCDE" not in str(errors) and "09/03/1971" not in str(errors)


@pytest.mark.parametrize("amount", [1000, "1,000.00", "-5.00", "1e3", "NaN", ""])
def test_requested_amount_must_be_a_plain_decimal_string(amount):
    assert "requested_amount" in validate_application(valid_body(requested_amount=amount))


def test_config_comes_from_arguments_then_environment_then_defaults():
    environ = {"CARECREDIT_SANDBOX_DECISION_DELAY": "7.5", "CARECREDIT_SANDBOX_APR": "14.9", "CARECREDIT_SANDBOX_CLIENT_ID": "env-id"}

    config = SandboxConfig.from_env(environ, client_id="arg-id")

    assert (config.client_id, config.decision_delay, config.reduced_apr) == ("arg-id", 7.5, D("14.90"))
    assert (config.client_secret, config.pending_delay, config.token_ttl) == ("sandbox-secret", 5.0, 3600)
    with pytest.raises(ValueError, match="CARECREDIT_SANDBOX_PENDING_DELAY"):
        SandboxConfig.from_env({"CARECREDIT_SANDBOX_PENDING_DELAY": "soon"})


# --- HTTP ------------------------------------------------------------------------------------


def test_token_endpoint_rejects_bad_credentials_and_grant_types(cc_sandbox):
    url = f"{cc_sandbox.base_url}/v1/oauth2/token"
    config = cc_sandbox.app.config

    wrong = requests.post(url, data={"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": "x"}, timeout=5)
    grant = requests.post(url, data={"grant_type": "password", "client_id": config.client_id, "client_secret": config.client_secret}, timeout=5)

    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    issued = token(cc_sandbox)
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 3600)


def test_api_needs_a_valid_bearer_token(cc_sandbox):
    missing = requests.get(f"{cc_sandbox.base_url}/v1/promotions?merchant_number=m&amount=5.00", timeout=5)
    unknown = api(cc_sandbox, "GET", "/v1/promotions?merchant_number=m&amount=5.00", access_token="tok_forged")

    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_token")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")


def test_tokens_expire_after_their_ttl(cc_sandbox, advance_clock):
    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"token_ttl": 1}, timeout=5).raise_for_status()
    issued = token(cc_sandbox)
    assert issued["expires_in"] == 1
    assert api(cc_sandbox, "GET", "/v1/promotions?merchant_number=m&amount=5.00", issued["access_token"]).status_code == 200

    advance_clock(cc_sandbox, 1.05)  # sandbox time: no sleeping

    assert api(cc_sandbox, "GET", "/v1/promotions?merchant_number=m&amount=5.00", issued["access_token"]).status_code == 401


def test_create_answers_201_then_200_for_the_same_idempotency_key_and_merchant(cc_sandbox):
    access_token = token(cc_sandbox)["access_token"]
    headers = {"Idempotency-Key": "case-1"}

    first = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body(), headers=headers)
    again = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body(), headers=headers)
    other_merchant = api(
        cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body(merchant_number="999"), headers=headers
    )
    no_key = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body())

    assert (first.status_code, again.status_code, other_merchant.status_code, no_key.status_code) == (201, 200, 201, 201)
    assert again.json()["application_id"] == first.json()["application_id"]
    assert len({r.json()["application_id"] for r in (first, other_merchant, no_key)}) == 3
    created = first.json()
    assert created["status"] == "APPLICATION_SENT"
    assert created["reference"] == "case-1"
    assert created["apply_url"] == f"{cc_sandbox.base_url}/apply/{created['application_id']}"
    assert "applicant" not in created and "Zelda" not in first.text


def test_invalid_json_and_validation_errors_are_json_400(cc_sandbox):
    access_token = token(cc_sandbox)["access_token"]

    not_json = api(cc_sandbox, "POST", "/v1/applications", access_token, data=b"{nope", headers={"Content-Type": "application/json"})
    invalid = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body(requested_amount="0"))

    assert (not_json.status_code, not_json.json()["error"]) == (400, "invalid_json")
    assert invalid.status_code == 400
    assert invalid.json() == {
        "error": "validation_failed",
        "message": "the application has invalid fields",
        "fields": {"requested_amount": "must be greater than 0.00"},
    }


def test_apply_page_shows_status_but_no_demographics(cc_sandbox):
    created = api(cc_sandbox, "POST", "/v1/applications", json=valid_body()).json()

    page = requests.get(created["apply_url"], timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "APPLICATION_SENT" in page.text and created["application_id"] in page.text
    for value in ("Zelda", "Smith", "1971", "Evergreen", "Shelbyville"):
        assert value not in page.text


def test_unknown_paths_wrong_methods_and_crashes_are_json(cc_sandbox, monkeypatch):
    def broken(app, request):
        raise RuntimeError("boom")

    monkeypatch.setattr("sandboxes.carecredit.api.authenticate", broken)

    missing = requests.get(f"{cc_sandbox.base_url}/v2/nothing", timeout=5)
    wrong_method = requests.delete(f"{cc_sandbox.base_url}/v1/applications", timeout=5)
    crashed = requests.get(f"{cc_sandbox.base_url}/v1/promotions", timeout=5)

    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert (crashed.status_code, crashed.json()["error"]) == (500, "internal_error")
    assert crashed.headers["Content-Type"] == "application/json"


def test_control_api_validates_faults_and_settings(cc_sandbox):
    base = cc_sandbox.base_url

    bad_fault = requests.post(f"{base}/_sandbox/faults", json={"mode": "explode", "path_prefix": "/_sandbox/reset"}, timeout=5)
    bad_config = requests.put(f"{base}/_sandbox/config", json={"decision_delay": "soon", "colour": "red"}, timeout=5)
    good_fault = requests.post(f"{base}/_sandbox/faults", json={"mode": "error", "count": None}, timeout=5)

    assert bad_fault.status_code == 400
    assert set(bad_fault.json()["fields"]) == {"mode", "path_prefix"}
    assert bad_config.status_code == 400
    assert bad_config.json()["fields"] == {
        "decision_delay": "must be a number of seconds between 0 and 86400",
        "colour": "is not a run-time setting",
    }
    assert good_fault.status_code == 201
    assert good_fault.json()["count"] is None and good_fault.json()["status"] == 503
    assert len(requests.get(f"{base}/_sandbox/faults", timeout=5).json()) == 1
    assert requests.delete(f"{base}/_sandbox/faults", timeout=5).json() == {"cleared": 1}
    assert requests.get(f"{base}/_sandbox/health", timeout=5).json() == {"ok": True}


def test_unlimited_fault_applies_until_cleared_and_only_to_api_paths(cc_sandbox):
    base = cc_sandbox.base_url
    requests.post(f"{base}/_sandbox/faults", json={"mode": "error", "status": 502, "method": "*", "count": None}, timeout=5)

    statuses = [requests.get(f"{base}/v1/promotions", timeout=5).status_code for _ in range(3)]

    assert statuses == [502, 502, 502]
    assert requests.get(f"{base}/_sandbox/health", timeout=5).status_code == 200
    requests.delete(f"{base}/_sandbox/faults", timeout=5)
    assert requests.get(f"{base}/v1/promotions", timeout=5).status_code == 401


def test_config_changes_apply_to_new_applications_only(cc_sandbox):
    access_token = token(cc_sandbox)["access_token"]
    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"decision_delay": 0}, timeout=5).raise_for_status()
    immediate = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body()).json()

    requests.put(f"{cc_sandbox.base_url}/_sandbox/config", json={"decision_delay": 3600}, timeout=5).raise_for_status()
    later = api(cc_sandbox, "POST", "/v1/applications", access_token, json=valid_body(reference="case-2")).json()

    assert immediate["status"] == "APPROVED"
    assert api(cc_sandbox, "GET", f"/v1/applications/{immediate['application_id']}", access_token).json()["status"] == "APPROVED"
    assert later["status"] == "APPLICATION_SENT"


def test_reset_restores_the_starting_configuration(cc_sandbox):
    requests.put(
        f"{cc_sandbox.base_url}/_sandbox/config",
        json={"webhook_duplicates": 3, "apr": "9.99", "prescreen_valid_days": 60, "cardholder_available_credit": "100.00",
              "approval_valid_days": 5},
        timeout=5,
    ).raise_for_status()

    requests.post(f"{cc_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()

    assert requests.get(f"{cc_sandbox.base_url}/_sandbox/config", timeout=5).json() == {
        "decision_delay": 0.2, "pending_delay": 0.4, "apr": "17.90",
        "webhook_duplicates": 0, "webhook_reorder": False, "webhook_concurrency": 1, "token_ttl": 3600,
        "prescreen_valid_days": 30, "prescreen_batches_per_minute": 6, "cardholder_available_credit": "5000.00",
        "approval_valid_days": 30,
    }


def test_command_line_prints_its_url_and_exits_cleanly_on_sigterm():
    project_root = Path(sandboxes.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(project_root), "CARECREDIT_SANDBOX_PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.carecredit", "--host", "127.0.0.1"],
        cwd=project_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("CareCredit sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json() == {"ok": True}

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=5) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
