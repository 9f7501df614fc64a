"""The REST API: intake validation against the PMS, the case shape, location scoping."""

from decimal import Decimal as D

import pytest
import requests
from rest_framework.test import APIClient

from financing import services
from financing.models import CaseState, FinancedCase
from tests.conftest import make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(coordinator):
    client = APIClient()
    client.force_authenticate(coordinator)
    return client


def post_case(api, **body):
    return api.post("/api/v1/cases/", body, format="json")


def test_create_returns_the_case_with_its_plan_snapshot(api, sandboxes, location, tasks):
    patient = sandboxes.new_patient("Thompson", fees=("1250.00", "310.00"))
    response = post_case(api, location="main", patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], down_payment="60.00")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "captured"
    assert body["reference"].startswith("CS-")
    assert body["location"] == "main"
    assert body["plan_total"] == "1560.00"
    assert body["requested_down_payment"] == "60.00"
    assert body["promotion"] == "deferred_12"  # the template's default
    assert body["guarantor_id"] == patient["guarantor_id"]
    assert body["procedures"] == [
        {"code": "D2740", "tooth": "3", "surface": "", "fee": "1250.00"},
        {"code": "D2740", "tooth": "4", "surface": "", "fee": "310.00"},
    ]
    assert body["decision"] is None and body["arrangement"] is None and body["ledger_note"] is None
    assert [t["state"] for t in body["timeline"]] == ["captured"]
    assert tasks.names() == ["financing.send_application"]


def test_get_shows_decision_arrangement_note_notifications_and_timeline(api, sandboxes, location, tasks):
    patient = sandboxes.new_patient("Thompson")
    case_id = post_case(api, location="main", patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"]).json()["id"]
    tasks.drain()
    services.refresh_decision(case_id)
    tasks.drain()
    body = api.get(f"/api/v1/cases/{case_id}/").json()
    assert body["state"] == "completed"
    assert body["decision"]["status"] == "approved" and body["decision"]["approved_amount"] == "2500.00"
    assert {o["code"] for o in body["decision"]["offers"]} >= {"deferred_6", "deferred_24", "reduced_apr_60"}
    arrangement = body["arrangement"]
    assert {k: arrangement[k] for k in ("down_payment", "financed_amount", "recurring_amount", "number_of_payments", "final_payment", "frequency", "apr", "total_of_payments", "finance_charge")} == {
        "down_payment": "0.00", "financed_amount": "2500.00", "recurring_amount": "208.34", "number_of_payments": 12,
        "final_payment": "208.26", "frequency": "monthly", "apr": "0.00", "total_of_payments": "2500.00", "finance_charge": "0.00",
    }
    assert arrangement["pms_arrangement_id"] != ""
    assert body["ledger_note"]["type"] == "account" and "[chairside:" in body["ledger_note"]["text"]
    assert sorted((n["channel"], n["status"]) for n in body["notifications"]) == [("email", "sent"), ("sms", "sent")]
    assert [t["state"] for t in body["timeline"]] == ["captured", "application_sent", "approved", "arrangement_written", "completed"]


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"patient_id": "999999"}, "patient_id", "Patient 999999 was not found in Dentrix."),
        ({"treatment_plan_id": "5001"}, "treatment_plan_id", "does not belong to patient"),
        ({"promotion": "deferred_7"}, "promotion", '"deferred_7" is not a valid choice.'),
        ({"down_payment": "-1.00"}, "down_payment", "Ensure this value is greater than or equal to 0.00."),
        ({"down_payment": "12.345"}, "down_payment", "Ensure that there are no more than 2 decimal places."),
        ({"down_payment": "2500.00"}, "down_payment", "covers the whole plan"),
        ({"location": "elsewhere"}, "location", "You have no location with code 'elsewhere'."),
        ({"patient_id": "1; DROP"}, "patient_id", "A PMS patient id"),
    ],
)
def test_bad_intake_is_a_400_with_field_messages_and_no_case(api, sandboxes, location, tasks, change, field, message):
    patient = sandboxes.new_patient("Thompson")
    body = {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"], **change}
    response = post_case(api, **body)
    assert response.status_code == 400
    [only] = response.json()["errors"][field]
    assert message in only and set(response.json()["errors"]) == {field}
    assert response.json()["detail"] == f"{field}: {only}"
    assert FinancedCase.objects.count() == 0
    assert tasks.queue == []


def test_a_plan_not_accepted_or_already_financed_is_refused(api, sandboxes, location, tasks):
    patient = sandboxes.new_patient("Thompson")
    ids = {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}
    assert post_case(api, **ids).status_code == 201
    second = post_case(api, **ids)
    assert second.status_code == 400
    assert "already has a financing case" in second.json()["errors"]["treatment_plan_id"][0]

    other = sandboxes.new_patient("Rivera")
    requests.put(f"{sandboxes.dentrix_url}/_sandbox/treatment-plans/{other['treatment_plan_id']}", json={"status": "proposed"}, timeout=5).raise_for_status()
    refused = post_case(api, location="main", patient_id=other["patient_id"], treatment_plan_id=other["treatment_plan_id"])
    assert refused.status_code == 400
    assert "is proposed, not accepted" in refused.json()["errors"]["treatment_plan_id"][0]
    assert FinancedCase.objects.count() == 1


def test_a_cancelled_case_frees_its_plan(api, sandboxes, location, tasks):
    patient = sandboxes.new_patient("Thompson")
    ids = {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}
    first = post_case(api, **ids).json()
    services.cancel_case(first["id"], reason="patient changed their mind")
    assert post_case(api, **ids).status_code == 201


def test_pms_unreachable_at_intake_still_accepts_and_the_first_step_checks(api, sandboxes, location, tasks):
    patient = sandboxes.new_patient("Thompson")
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/patients", mode="error", status=503, count=1)
    response = post_case(api, location="main", patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"])
    assert response.status_code == 201
    assert response.json()["plan_total"] is None
    tasks.drain()
    case = FinancedCase.objects.get()
    assert case.state == CaseState.APPLICATION_SENT
    assert case.plan_total == D("2500.00")


def test_callers_see_and_create_only_in_their_locations(sandboxes, location, template, tasks):
    other = make_location(template, sandboxes, code="north")
    mine, theirs = make_user("a", location), make_user("b", other)
    patient = sandboxes.new_patient("Thompson")
    api = APIClient()
    api.force_authenticate(theirs)
    created = post_case(api, location="north", patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"]).json()

    api.force_authenticate(mine)
    assert api.get("/api/v1/cases/").json()["count"] == 0
    assert api.get(f"/api/v1/cases/{created['id']}/").status_code == 404
    # Another location's code is refused like one that does not exist: nothing of north's.
    assert api.get("/api/v1/cases/?location=north").json()["errors"] == {"location": ["You have no location with code 'north'; yours: main."]}
    refused = post_case(api, location="north", patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"])
    assert refused.status_code == 400 and refused.json()["errors"] == {"location": ["You have no location with code 'north'."]}

    api.force_authenticate(theirs)
    assert api.get("/api/v1/cases/?state=captured").json()["count"] == 1
    assert api.get("/api/v1/cases/?state=completed").json()["count"] == 0


def test_the_api_needs_authentication_and_accepts_tokens(sandboxes, coordinator):
    from rest_framework.authtoken.models import Token

    assert APIClient().get("/api/v1/cases/").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=coordinator).key}")
    assert client.get("/api/v1/cases/").status_code == 200


def test_a_page_holds_at_most_200_cases_whatever_the_limit(api, location):
    """?limit= is capped (a 20-digit limit was a 500 on SQLite), and the schema says so."""
    FinancedCase.objects.bulk_create(
        FinancedCase(location=location, patient_id=f"P{i}", treatment_plan_id=f"T{i}", promotion="deferred_12") for i in range(201)
    )
    for limit, size in [("200", 200), ("201", 200), ("99999999999999999999", 200), ("9" * 5000, 50), ("0", 50), ("-1", 50), ("7", 7)]:
        body = api.get("/api/v1/cases/", {"limit": limit}).json()
        assert (body["count"], len(body["results"])) == (201, size), limit
    assert "limit=200&offset=200" in api.get("/api/v1/cases/?limit=99999999999999999999").json()["next"]
    last = api.get("/api/v1/cases/", {"limit": "99999999999999999999", "offset": "200"}).json()
    assert (len(last["results"]), last["next"]) == (1, None)
    [limit] = [p for p in api.get("/api/schema/?format=json").json()["paths"]["/api/v1/cases/"]["get"]["parameters"] if p["name"] == "limit"]
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}


def test_openapi_schema_describes_the_cases_endpoint(api):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/cases/" in schema["paths"] and "post" in schema["paths"]["/api/v1/cases/"]
    assert "/api/v1/webhooks/carecredit/" in schema["paths"]
