"""Every 4xx of the REST API has one shape: {"detail": "<sentence>", "errors": {"<field>": ["<message>", ...]}}.

Table-driven: one row per way a request can be refused, from intake's own checks to DRF's
authentication, content negotiation and throttling, Django's own 404 and the query guard.
"""

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import BaseThrottle

from core.api_errors import field_errors, summary
from financing.api import CaseViewSet
from financing.models import FinancedCase

pytestmark = pytest.mark.django_db(transaction=True)


class Refuse(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 42


def intake(api, sandboxes, **change):
    patient = sandboxes.new_patient("Thompson")
    body = {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"], **change}
    return api.post("/api/v1/cases/", body, format="json")


# name → (how to make the request, status, expected body; None: any sentence, no field)
CASES = {
    "intake refused by the PMS (IntakeError)": (
        lambda api, sandboxes: intake(api, sandboxes, patient_id="999999"),
        400,
        {"detail": "patient_id: Patient 999999 was not found in Dentrix.", "errors": {"patient_id": ["Patient 999999 was not found in Dentrix."]}},
    ),
    "serializer validation, two fields": (
        lambda api, sandboxes: intake(api, sandboxes, promotion="deferred_7", down_payment="-1.00"),
        400,
        {
            "detail": 'down_payment: Ensure this value is greater than or equal to 0.00. promotion: "deferred_7" is not a valid choice.',
            "errors": {"down_payment": ["Ensure this value is greater than or equal to 0.00."], "promotion": ['"deferred_7" is not a valid choice.']},
        },
    ),
    "a body that is no object": (
        lambda api, sandboxes: api.post("/api/v1/cases/", "[]", content_type="application/json"),
        400,
        {"detail": "Invalid data. Expected a dictionary, but got list.", "errors": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}},
    ),
    "unreadable JSON (core.inbound)": (
        lambda api, sandboxes: api.post("/api/v1/cases/", b"\xff\xfe", content_type="application/json"),
        400,
        {"detail": "The body is not UTF-8 text.", "errors": {}},
    ),
    "a body over the upload limit": (
        lambda api, sandboxes: api.post("/api/v1/cases/", b"{" + b" " * 2_621_441 + b"}", content_type="application/json"),
        400,
        {"detail": "The body is larger than 2621440 bytes.", "errors": {}},
    ),
    "a filter value the API does not know": (
        lambda api, sandboxes: api.get("/api/v1/cases/", {"state": "bogus"}),
        400,
        None,
    ),
    "NUL in the query string": (
        lambda api, sandboxes: api.get("/api/v1/cases/", {"state": "\x00"}),
        400,
        {"detail": "The query string holds a NUL character.", "errors": {"state": ["The value holds a NUL character."]}},
    ),
    "no credentials": (
        lambda api, sandboxes: APIClient().get("/api/v1/cases/"),
        401,
        {"detail": "Authentication credentials were not provided.", "errors": {}},
    ),
    "a wrong token": (
        lambda api, sandboxes: APIClient(HTTP_AUTHORIZATION="Token nope").get("/api/v1/cases/"),
        401,
        {"detail": "Invalid token.", "errors": {}},
    ),
    "a session without its CSRF token": (
        lambda api, sandboxes: session_client(api).post("/api/v1/cases/", {}, format="json"),
        403,
        {"detail": "CSRF Failed: CSRF cookie not set.", "errors": {}},
    ),
    "no such case": (
        lambda api, sandboxes: api.get("/api/v1/cases/99999/"),
        404,
        {"detail": "No such case among your locations' cases.", "errors": {}},
    ),
    "no such address under /api/": (
        lambda api, sandboxes: api.get("/api/v1/cases/1.5e-3/"),
        404,
        {"detail": "There is nothing at this address of the API.", "errors": {}},
    ),
    "a method the address does not take": (
        lambda api, sandboxes: api.delete("/api/v1/cases/"),
        405,
        {"detail": 'Method "DELETE" not allowed.', "errors": {}},
    ),
    "a format the API cannot give": (
        lambda api, sandboxes: api.get("/api/v1/cases/", HTTP_ACCEPT="application/xml"),
        406,
        {"detail": 'Could not satisfy the request Accept header.', "errors": {}},
    ),
    "a content type the API does not read": (
        lambda api, sandboxes: api.post("/api/v1/cases/", "location=main", content_type="text/plain"),
        415,
        {"detail": 'Unsupported media type "text/plain" in request.', "errors": {}},
    ),
    "too many requests": (
        lambda api, sandboxes: throttled(api),
        429,
        {"detail": "Request was throttled. Expected available in 42 seconds.", "errors": {}},
    ),
}


def session_client(api):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(api.handler._force_user)
    return client


def throttled(api):
    original = CaseViewSet.throttle_classes
    CaseViewSet.throttle_classes = [Refuse]
    try:
        return api.get("/api/v1/cases/")
    finally:
        CaseViewSet.throttle_classes = original


@pytest.mark.parametrize("name", list(CASES))
def test_every_error_of_the_api_has_the_one_shape(name, sandboxes, location, coordinator, tasks):
    request, status, expected = CASES[name]
    api = APIClient()
    api.force_authenticate(coordinator)
    response = request(api, sandboxes)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], dict)
    assert all(isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages) for messages in body["errors"].values())
    if expected is not None:
        assert body == expected
    # No refusal made anything.
    assert FinancedCase.objects.count() == 0
    assert tasks.queue == []
    if status == 429:
        assert response["Retry-After"] == "42"


def test_the_schema_documents_the_shape_for_every_error_the_operations_answer(location, coordinator):
    api = APIClient()
    api.force_authenticate(coordinator)
    schema = api.get("/api/schema/?format=json").json()
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, statuses in [
        ("/api/v1/cases/", "get", {"400", "401", "403", "405", "406", "415", "429"}),
        ("/api/v1/cases/", "post", {"400", "401", "403", "405", "406", "415", "429"}),
        ("/api/v1/cases/{id}/", "get", {"404", "401", "403", "405", "406", "415", "429"}),
    ]:
        responses = schema["paths"][path][method]["responses"]
        assert {code for code in responses if code.startswith("4")} == statuses, (path, method)
        for code in statuses:
            assert responses[code]["content"]["application/json"]["schema"] == error, (path, method, code)
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail", "errors"]


@pytest.mark.parametrize(
    "detail, errors",
    [
        ({"a": ["x"], "b": "y"}, {"a": ["x"], "b": ["y"]}),
        (["x", "y"], {"non_field_errors": ["x", "y"]}),
        ("x", {"non_field_errors": ["x"]}),
        ({"__all__": ["x"]}, {"non_field_errors": ["x"]}),
        ({"offers": {0: {"code": ["x"]}, 2: ["y"]}}, {"offers.0.code": ["x"], "offers.2": ["y"]}),
        ({"items": [{}, {"fee": ["x"]}]}, {"items.1.fee": ["x"]}),
        ({}, {}),
    ],
)
def test_field_errors_are_lists_of_strings_by_field_whatever_drf_nests(detail, errors):
    assert field_errors(detail) == errors


def test_the_summary_names_each_field_and_ends_each_message():
    assert summary({"a": ["x"], "non_field_errors": ["y."]}) == "a: x. y."
    assert summary({}) == "The request is invalid."
