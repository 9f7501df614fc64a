"""The CareCredit sandbox's batch Quickscreen and cardholder confirmation, over raw HTTP:
its own rules, limits and answers, without Chairside's client."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from sandboxes.carecredit import SandboxConfig
from sandboxes.carecredit.quickscreen import MAX_BATCH, age_on, batch_errors, prescreen_persona_for

D = Decimal
MERCHANT = "5348120000000001"
ADDRESS = {"line1": "742 Evergreen Terrace", "city": "Shelbyville", "state": "IL", "zip": "62565"}


def person(reference="appt-1", last_name="Smith", amount="1234.56", **changes):
    entry = {
        "reference": reference, "first_name": "Zelda", "last_name": last_name, "birth_date": "1971-03-09",
        "address": dict(ADDRESS), "requested_amount": amount,
    }
    entry.update(changes)
    return entry


def access_token(sandbox):
    config = sandbox.app.config
    response = requests.post(
        f"{sandbox.base_url}/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": config.client_secret},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def post(sandbox, path, body, token=None):
    headers = {"Authorization": f"Bearer {token or access_token(sandbox)}"}
    return requests.post(f"{sandbox.base_url}{path}", json=body, headers=headers, timeout=5)


def quickscreen(sandbox, applicants, merchant=MERCHANT, token=None):
    return post(sandbox, "/v1/quickscreens", {"merchant_number": merchant, "applicants": applicants}, token)


def confirm(sandbox, reference="CS-1", last_name="Cardholder-Reyes", amount="1200.00", token=None, **cardholder):
    holder = {"first_name": "Zelda", "last_name": last_name, "birth_date": "1971-03-09", "address": dict(ADDRESS), **cardholder}
    body = {"merchant_number": MERCHANT, "reference": reference, "requested_amount": amount, "cardholder": holder}
    return post(sandbox, "/v1/cardholder-confirmations", body, token)


def set_config(sandbox, **settings):
    return requests.put(f"{sandbox.base_url}/_sandbox/config", json=settings, timeout=5)


@pytest.fixture
def day(cc_sandbox):
    """The sandbox's clock pinned to noon UTC on June 15 two years on; returns that date."""
    moment = date(datetime.now(timezone.utc).year + 2, 6, 15)
    requests.post(
        f"{cc_sandbox.base_url}/_sandbox/clock", json={"now": f"{moment.isoformat()}T12:00:00Z"}, timeout=5
    ).raise_for_status()
    return moment


# --- pure rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surname, persona",
    [
        ("Cardholder-Reyes", "cardholder"), ("CARDHOLDER", "cardholder"), (" nomatch-ortiz", "nomatch"),
        ("Decline-Parker", "decline"), ("Refer-Garcia", "decline"), ("Partial-Nguyen", "partial"),
        ("Pending-Lee", "approve"), ("Expire-Brown", "approve"), ("Thompson", "approve"), ("Holder", "approve"),
    ],
)
def test_the_prescreen_persona_comes_from_the_surname_prefix(surname, persona):
    assert prescreen_persona_for(surname) == persona


@pytest.mark.parametrize(
    "birth, today, age",
    [
        (date(2010, 6, 15), date(2028, 6, 15), 18), (date(2010, 6, 16), date(2028, 6, 15), 17),
        (date(2008, 2, 29), date(2026, 2, 28), 17), (date(2008, 2, 29), date(2026, 3, 1), 18),
    ],
)
def test_age_counts_whole_years_birthday_included(birth, today, age):
    assert age_on(birth, today) == age


def test_batch_errors_name_the_structure_not_the_entries_fields():
    assert batch_errors({"merchant_number": MERCHANT, "applicants": [person(), person("appt-2", birth_date="x")]}) == {}
    assert batch_errors({"merchant_number": "", "applicants": []}) == {
        "merchant_number": "is required", "applicants": "must be a non-empty list",
    }
    assert batch_errors({"merchant_number": MERCHANT, "applicants": [person() for _ in range(MAX_BATCH + 1)]}) == {
        "applicants": "must hold at most 100 applicants per batch",
    }
    assert batch_errors({"merchant_number": MERCHANT, "applicants": [person("a"), person("a"), {"reference": 7}, "x"]}) == {
        "applicants[1].reference": "must be unique in the batch",
        "applicants[2].reference": "is required, at most 64 characters",
        "applicants[3].reference": "is required, at most 64 characters",
    }


def test_the_new_settings_come_from_the_environment():
    config = SandboxConfig.from_env({
        "CARECREDIT_SANDBOX_PRESCREEN_VALID_DAYS": "60", "CARECREDIT_SANDBOX_PRESCREEN_RATE": "2",
        "CARECREDIT_SANDBOX_CARDHOLDER_CREDIT": "7500",
    })

    assert (config.prescreen_valid_days, config.prescreen_batches_per_minute, config.cardholder_available_credit) == (
        60, 2, D("7500.00")
    )
    defaults = SandboxConfig.from_env({})
    assert (defaults.prescreen_valid_days, defaults.prescreen_batches_per_minute, defaults.cardholder_available_credit) == (
        30, 6, D("5000.00")
    )


# --- the batch Quickscreen over HTTP ---------------------------------------------------------------


def test_a_batch_is_answered_one_result_per_applicant_in_order_without_demographics(cc_sandbox, day):
    response = quickscreen(cc_sandbox, [
        person("a", "Smith", "1234.56"),
        person("b", "Cardholder-Reyes", "900.00"),
        person("c", "Nomatch-Ortiz"),
        person("d", "Smith", birth_date=date(day.year - 17, 1, 1).isoformat()),
        person("e", "Smith", address={**ADDRESS, "zip": "123"}),
    ])

    assert response.status_code == 200
    empty = {"preapproved_amount": None, "available_credit": None, "expires_on": None}
    assert response.json() == {
        "merchant_number": MERCHANT,
        "screened_on": day.isoformat(),
        "results": [
            {"reference": "a", "status": "PREAPPROVED", "preapproved_amount": "1500.00", "available_credit": None,
             "expires_on": (day + timedelta(days=30)).isoformat()},
            {"reference": "b", "status": "ACCOUNT_FOUND", **empty, "available_credit": "5000.00"},
            {"reference": "c", "status": "NO_MATCH", **empty},
            {"reference": "d", "status": "NOT_ELIGIBLE", **empty},
            {"reference": "e", "status": "INVALID", **empty, "fields": {"address.zip": "must be 5 digits"}},
        ],
    }
    for value in ("Zelda", "Smith", "1971", "Evergreen", "Shelbyville", "62565"):
        assert value not in response.text


def test_the_configured_validity_and_credit_are_used(cc_sandbox, day):
    set_config(cc_sandbox, prescreen_valid_days=60, cardholder_available_credit="2500.00").raise_for_status()

    results = quickscreen(cc_sandbox, [person("a"), person("b", "Cardholder-Reyes")]).json()["results"]

    assert results[0]["expires_on"] == (day + timedelta(days=60)).isoformat()
    assert results[1]["available_credit"] == "2500.00"


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"applicants": [person()]}, {"merchant_number": "is required"}),
        ({"merchant_number": MERCHANT, "applicants": []}, {"applicants": "must be a non-empty list"}),
        ({"merchant_number": MERCHANT, "applicants": [person(f"a{i}") for i in range(101)]},
         {"applicants": "must hold at most 100 applicants per batch"}),
        ({"merchant_number": MERCHANT, "applicants": [person("a"), person("a")]},
         {"applicants[1].reference": "must be unique in the batch"}),
    ],
)
def test_a_batch_that_cannot_be_read_is_a_400_and_nothing_is_screened(cc_sandbox, body, fields):
    response = post(cc_sandbox, "/v1/quickscreens", body)

    assert response.status_code == 400
    assert response.json()["error"] == "validation_failed"
    assert response.json()["fields"] == fields
    assert "results" not in response.json()


def test_a_full_batch_of_100_is_taken_even_with_long_names_and_addresses(cc_sandbox):
    long_address = {**ADDRESS, "line1": "Apartment 12B, " + "Evergreen Terrace " * 20, "city": "S" * 60}
    applicants = [
        person(f"a{i}", "Smith-" + "x" * 60, amount="700.00", first_name="Z" * 60, address=long_address)
        for i in range(100)
    ]

    response = quickscreen(cc_sandbox, applicants)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 100
    assert {r["preapproved_amount"] for r in response.json()["results"]} == {"1000.00"}


def test_a_batch_needs_a_bearer_token(cc_sandbox):
    response = requests.post(f"{cc_sandbox.base_url}/v1/quickscreens", json={"merchant_number": MERCHANT, "applicants": [person()]}, timeout=5)

    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


def test_each_merchant_has_its_own_rate_limit_answered_with_429_and_retry_after(cc_sandbox, day, advance_clock):
    set_config(cc_sandbox, prescreen_batches_per_minute=2).raise_for_status()
    token = access_token(cc_sandbox)
    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 200
    advance_clock(cc_sandbox, 20)
    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 200

    limited = quickscreen(cc_sandbox, [person()], token=token)

    assert limited.status_code == 429
    assert limited.json() == {
        "error": "rate_limited", "message": "Too many Quickscreen batches for this merchant: at most 2 a minute.",
    }
    assert limited.headers["Retry-After"] in ("39", "40")  # until the first batch leaves the minute
    assert quickscreen(cc_sandbox, [person()], merchant="5348120000000002", token=token).status_code == 200
    advance_clock(cc_sandbox, 40)
    # The first batch has left the window, the second has not; the refused one never counted.
    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 200
    again = quickscreen(cc_sandbox, [person()], token=token)
    assert (again.status_code, again.headers["Retry-After"]) in ((429, "19"), (429, "20"))


def test_an_injected_fault_answers_before_the_batch_is_counted_and_reset_clears_the_window(cc_sandbox):
    set_config(cc_sandbox, prescreen_batches_per_minute=1).raise_for_status()
    requests.post(
        f"{cc_sandbox.base_url}/_sandbox/faults",
        json={"method": "POST", "path_prefix": "/v1/quickscreens", "mode": "error", "status": 503}, timeout=5,
    ).raise_for_status()
    token = access_token(cc_sandbox)

    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 503
    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 200
    assert quickscreen(cc_sandbox, [person()], token=token).status_code == 429
    requests.post(f"{cc_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    set_config(cc_sandbox, prescreen_batches_per_minute=1).raise_for_status()
    assert quickscreen(cc_sandbox, [person()]).status_code == 200


# --- cardholder confirmations over HTTP -------------------------------------------------------------


def test_a_confirmation_is_made_once_per_reference(cc_sandbox):
    token = access_token(cc_sandbox)

    first = confirm(cc_sandbox, token=token)
    again = confirm(cc_sandbox, token=token)
    changed = confirm(cc_sandbox, amount="1300.00", token=token)

    assert (first.status_code, again.status_code, changed.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    assert changed.json()["error"] == "reference_reused"
    body = first.json()
    assert {k: body[k] for k in ("reference", "merchant_number", "status", "requested_amount", "approved_amount", "available_credit")} == {
        "reference": "CS-1", "merchant_number": MERCHANT, "status": "APPROVED",
        "requested_amount": "1200.00", "approved_amount": "1200.00", "available_credit": "5000.00",
    }
    assert [p["code"] for p in body["promotions"]] == ["DI6", "DI12", "DI18", "DI24", "RA24", "RA36", "RA48", "RA60"]
    assert len(body["account_last4"]) == 4 and body["account_last4"].isdigit()
    assert "Zelda" not in first.text and "Evergreen" not in first.text
    assert requests.get(f"{cc_sandbox.base_url}/_sandbox/cardholder-confirmations", timeout=5).json() == [body]


def test_the_same_person_is_the_same_account_and_another_person_another(cc_sandbox):
    token = access_token(cc_sandbox)

    one = confirm(cc_sandbox, "CS-1", token=token).json()
    same = confirm(cc_sandbox, "CS-2", amount="300.00", token=token).json()
    other = confirm(cc_sandbox, "CS-3", "Cardholder-Kim", token=token).json()

    assert (same["account_last4"], same["account_token"]) == (one["account_last4"], one["account_token"])
    assert other["account_token"] != one["account_token"]
    assert same["confirmation_id"] != one["confirmation_id"]


def test_an_amount_over_the_available_credit_is_insufficient_credit(cc_sandbox):
    body = confirm(cc_sandbox, amount="5000.01").json()

    assert (body["status"], body["approved_amount"], body["available_credit"], body["promotions"]) == (
        "INSUFFICIENT_CREDIT", None, "5000.00", []
    )


def test_no_account_for_a_non_cardholder_or_a_minor(cc_sandbox, day):
    not_holder = confirm(cc_sandbox, last_name="Thompson")
    minor = confirm(cc_sandbox, "CS-2", birth_date=date(day.year - 17, 1, 1).isoformat())

    for response in (not_holder, minor):
        assert (response.status_code, response.json()["error"]) == (404, "account_not_found")
    assert requests.get(f"{cc_sandbox.base_url}/_sandbox/cardholder-confirmations", timeout=5).json() == []


def test_confirmation_fields_are_checked_without_echoing_values(cc_sandbox):
    response = confirm(cc_sandbox, reference="", amount="0", birth_date="09/03/1971", address={"zip": "ABCDE"})

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "reference": "is required, at most 64 characters",
        "requested_amount": "must be greater than 0.00",
        "cardholder.birth_date": "must be a date in the past, YYYY-MM-DD",
        "cardholder.address.line1": "is required",
        "cardholder.address.city": "is required",
        "cardholder.address.state": "must be a 2-letter state code",
        "cardholder.address.zip": "must be 5 digits",
    }
    assert "ABCDE" not in response.text and "09/03/1971" not in response.text


def test_bad_run_time_settings_are_refused(cc_sandbox):
    response = set_config(
        cc_sandbox, prescreen_valid_days=0, prescreen_batches_per_minute=True, cardholder_available_credit=5000,
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "prescreen_valid_days": "must be a whole number between 1 and 1000",
        "prescreen_batches_per_minute": "must be a whole number between 1 and 1000",
        "cardholder_available_credit": 'must be an amount as a string, 0.00 to 1000000.00, e.g. "5000.00"',
    }
