"""Promise 4, at the edges of what a request can carry: never a 5xx, never a row.

Hypothesis sends the REST API and the signed CareCredit webhook bodies nested past any
parser's recursion (arrays, objects, mixed; the issue's 100,000 arrays and 50,000 objects
among them), bodies that are not UTF-8 text, numbers no amount can be, a body over the
upload limit (over real HTTP), and huge or odd integers in every query and path parameter
the API documents; the billing console's list, page and id parameters get the same.
Every answer is a 4xx naming the problem, and every Chairside table holds exactly the rows
it held before.
"""

import json
import time
from urllib.parse import quote

import pytest
import requests
from django.apps import apps
from django.contrib import admin
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st
from rest_framework.test import APIClient

from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from core.inbound import MAX_DEPTH, MAX_PAGE_SIZE
from financing import services
from financing.models import CaseState, FinancedCase
from tests.console.console_factories import make_case
from tests.conftest import CARECREDIT_WEBHOOK_URL, deliver_carecredit_webhook, verified_login

pytestmark = pytest.mark.django_db(transaction=True)

FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
TOO_DEEP = f"The body nests arrays or objects deeper than {MAX_DEPTH} levels."
NOT_UTF8 = "The body is not UTF-8 text."
SURROGATE = "The body holds a \\u escape that is no Unicode character (a lone surrogate)."


def row_counts() -> dict[str, int]:
    """Rows in every Chairside table: cases and their history, decisions, arrangements,
    inbound events, notifications…"""
    return {
        model._meta.label: model._default_manager.count()
        for app in ("financing", "notifications")
        for model in apps.get_app_config(app).get_models()
    }


def nested(kind: str, depth: int) -> bytes:
    """A JSON value `depth` levels deep: arrays, objects, or both in turn."""
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    if kind == "objects":
        return b'{"a":' * depth + b"1" + b"}" * depth
    pairs = [(b"[", b"]") if i % 2 else (b'{"a":', b"}") for i in range(depth)]
    return b"".join(o for o, _ in pairs) + b"0" + b"".join(c for _, c in reversed(pairs))


@pytest.fixture
def api(coordinator):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(coordinator)
    return client


@pytest.fixture
def waiting_case(sandboxes, location, coordinator, tasks):
    """A real case waiting on CareCredit: what a forged or broken webhook must not move."""
    patient = sandboxes.new_patient("Pending-Lee")
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator
    )
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    assert case.state in (CaseState.APPLICATION_SENT, CaseState.AWAITING_DECISION) and case.application_id
    return case


def post_webhook(raw: bytes):
    return deliver_carecredit_webhook({}, raw=raw, client=Client(raise_request_exception=False))


def assert_untouched(before: dict, case: FinancedCase):
    assert row_counts() == before
    fresh = FinancedCase.objects.get(pk=case.pk)
    assert (fresh.state, fresh.state_changed_at) == (case.state, case.state_changed_at)


# -- bodies --------------------------------------------------------------------------------


def test_bodies_nested_past_the_limit_are_a_400_from_the_api_and_the_signed_webhook(api, waiting_case):
    """The issue's bodies (100,000 arrays, 50,000 objects deep) were a 500 from both:
    RecursionError escaped DRF's parser and the webhook's `except`. Under the limit, the
    same shapes are read and refused field by field."""
    before = row_counts()

    @given(
        kind=st.sampled_from(["arrays", "objects", "mixed"]),
        depth=st.one_of(st.integers(1, 3 * MAX_DEPTH), st.integers(MAX_DEPTH, 200_000)),
        wrapped=st.booleans(),
    )
    @example(kind="arrays", depth=100_000, wrapped=False)
    @example(kind="objects", depth=50_000, wrapped=False)
    @example(kind="mixed", depth=MAX_DEPTH + 1, wrapped=False)
    @example(kind="arrays", depth=MAX_DEPTH - 1, wrapped=True)
    @hypothesis_settings(max_examples=40, **FAST)
    def check(kind, depth, wrapped):
        value = nested(kind, depth)
        # Bare, or as the value of a field the API and the webhook read (one level more).
        intake = b'{"location": "main", "patient_id": ' + value + b', "treatment_plan_id": "5001"}' if wrapped else value
        event = b'{"event_id": "evt_nested", "application_id": ' + value + b"}" if wrapped else value
        too_deep = depth + wrapped > MAX_DEPTH
        response = api.post("/api/v1/cases/", intake, content_type="application/json")
        assert response.status_code == 400, (kind, depth, wrapped, response.status_code)
        if too_deep:
            assert response.json() == {"detail": TOO_DEEP, "errors": {}}
        else:
            assert set(response.json()["errors"]) <= {"location", "patient_id", "treatment_plan_id", "non_field_errors"}, response.json()
        response = post_webhook(event)
        assert response.status_code == 400, (kind, depth, wrapped, response.status_code)
        reason = TOO_DEEP if too_deep else "event_id and application_id are required strings."
        assert response.json() == {"error": f"Malformed event: {reason}"}
        assert_untouched(before, waiting_case)

    check()


def utf16_event(case):
    return json.dumps({"event_id": "evt_utf16", "type": "application.status_changed", "application_id": case.application_id}).encode("utf-16")


not_utf8 = st.one_of(
    # Valid JSON in another encoding (json.loads guesses UTF-16 and UTF-32 from raw bytes).
    st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]).map(
        lambda enc: json.dumps({"location": "Café", "event_id": "évt", "application_id": "app_é"}, ensure_ascii=False).encode(enc)
    ),
    # A UTF-8 body with a byte that cannot be there spliced in.
    st.tuples(st.integers(0, 40), st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"])).map(
        lambda p: (lambda good: good[: p[0]] + p[1] + good[p[0]:])(b'{"event_id": "evt_1", "application_id": "app_1", "location": "main"}')
    ),
    # \\u escapes of lone surrogates: valid JSON, but no character (unencodable, unstorable).
    st.sampled_from(["\\ud800", "\\udfff", "\\uDBFF", "a\\udc00b", "\\ude00\\ud83d"]).map(
        lambda s: ('{"event_id": "%s", "application_id": "app_1", "location": "%s"}' % (s, s)).encode()
    ),
)


def test_bodies_that_are_not_utf8_text_are_a_400_from_the_api_and_the_signed_webhook(api, waiting_case):
    """A lone surrogate reached the database lookup (a 500 on SQLite and PostgreSQL), and a
    correctly signed UTF-16 event was read as if it were UTF-8 JSON."""
    before = row_counts()

    @given(raw=not_utf8)
    @example(raw=utf16_event(waiting_case))
    @hypothesis_settings(max_examples=40, **FAST)
    def check(raw):
        response = api.post("/api/v1/cases/", raw, content_type="application/json")
        assert response.status_code == 400, (raw[:60], response.status_code)
        assert response.json()["detail"] in (NOT_UTF8, SURROGATE), response.json()
        response = post_webhook(raw)
        assert response.status_code == 400, (raw[:60], response.status_code)
        assert response.json()["error"] in (f"Malformed event: {NOT_UTF8}", f"Malformed event: {SURROGATE}"), response.json()
        assert_untouched(before, waiting_case)

    check()
    assert post_webhook(utf16_event(waiting_case)).json() == {"error": f"Malformed event: {NOT_UTF8}"}


huge_number_literals = st.one_of(
    st.sampled_from(["1e999999", "-1e999999", "1E400", "9" * 10_000, "-" + "9" * 4_301, "1" + "0" * 100, "0." + "1" * 200, "1e-999999" + "9" * 100]),
    st.integers(101, 20_000).map(lambda n: "7" * n),
    st.integers(309, 10**6).map(lambda e: f"1e{e}"),
)


def test_numbers_no_amount_can_be_are_a_400_in_any_field(api, waiting_case):
    """Each field, intake's or the event's (even one the webhook ignores), holding a number
    past any double or over 100 characters: refused before anything reads it."""
    before = row_counts()
    intake_fields = ["location", "patient_id", "treatment_plan_id", "down_payment", "promotion", "patient_consents_to_messages"]
    event_fields = ["event_id", "application_id", "type", "status", "created"]

    @given(number=huge_number_literals, intake_field=st.sampled_from(intake_fields), event_field=st.sampled_from(event_fields))
    @hypothesis_settings(max_examples=40, **FAST)
    def check(number, intake_field, event_field):
        intake = {"location": "main", "patient_id": "1001", "treatment_plan_id": "5001"}
        raw = json.dumps({**intake, intake_field: "NUMBER"}).replace('"NUMBER"', number).encode()
        response = api.post("/api/v1/cases/", raw, content_type="application/json")
        assert response.status_code == 400, (intake_field, number[:30], response.status_code)
        assert response.json()["detail"] in ("A number is out of range.", "A number is longer than 100 characters."), response.json()
        event = {"event_id": "evt_n", "type": "application.status_changed", "application_id": waiting_case.application_id, "created": 1}
        raw = json.dumps({**event, event_field: "NUMBER"}).replace('"NUMBER"', number).encode()
        response = post_webhook(raw)
        assert response.status_code == 400, (event_field, number[:30], response.status_code)
        assert response.json()["error"] in ("Malformed event: A number is out of range.", "Malformed event: A number is longer than 100 characters.")
        assert_untouched(before, waiting_case)

    check()


def test_a_body_over_the_upload_limit_is_a_json_400_over_http(live_server, sandboxes, location, coordinator, waiting_case, settings):
    """Over a real HTTP server: a valid intake body and a correctly signed event, each
    padded past DATA_UPLOAD_MAX_MEMORY_SIZE, are refused whole (no case, no event), in the
    answer's documented JSON shape rather than Django's HTML error page."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=coordinator).key
    patient = sandboxes.new_patient("Thompson")
    before = row_counts()
    padding = b" " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    intake = json.dumps({"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}).encode()
    response = requests.post(
        f"{live_server.url}/api/v1/cases/", data=intake[:-1] + padding + b"}",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"}, timeout=30,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.", "errors": {}}
    event = json.dumps({"event_id": "evt_big", "type": "application.status_changed", "application_id": waiting_case.application_id}).encode()
    raw = event[:-1] + padding + b"}"
    response = requests.post(
        f"{live_server.url}{CARECREDIT_WEBHOOK_URL}", data=raw, timeout=30,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign("whsec_sandbox", raw, int(time.time()))},
    )
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed event: The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."}
    assert_untouched(before, waiting_case)
    assert sandboxes.dentrix_requests("POST") == []


# -- query strings and paths ---------------------------------------------------------------

odd_integers = st.one_of(
    st.integers(min_value=2**63 - 2, max_value=10**30),
    st.integers(min_value=-(10**30), max_value=-(2**63) + 2),
    st.integers(min_value=2**31 - 2, max_value=2**64 + 2),
    st.integers(min_value=-3, max_value=3 * MAX_PAGE_SIZE),
).map(str)
# The case list's filters (financing/api_filters.py); "" means "no filter".
FILTERS = {"state", "location", "promotion", "captured_from", "captured_to"}
odd_values = st.one_of(
    odd_integers,
    st.sampled_from([
        "99999999999999999999", "9" * 5_000, "-" + "9" * 5_000, "1e999999", "1e308", "-0", "0" * 30 + "7", "²", "٣", "0x1F",
        " 7", "7 ", "+7", "7.0", "NaN", "", "\x00", "7\x00",
    ]),
)


def api_parameters() -> list[tuple[str, str, str]]:
    """(path template, "query" or "path", name) of every GET the schema documents."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            found.append((path, parameter["in"], parameter["name"]))
    return found


def test_huge_and_odd_integers_in_every_query_and_path_parameter_of_the_api(api, location, coordinator):
    """`?limit=99999999999999999999` reached SQLite as a LIMIT it cannot hold (a 500); a
    NUL reached PostgreSQL as text it refuses (a 500). Every GET parameter the schema
    documents, one at a time, with cases to list."""
    cases = [make_case(location, coordinator=coordinator) for _ in range(3)]
    ids = {c.pk for c in cases}
    parameters = api_parameters()
    assert {(p, n) for p, _, n in parameters} >= {("/api/v1/cases/", "limit"), ("/api/v1/cases/", "offset"), ("/api/v1/cases/", "state"), ("/api/v1/cases/{id}/", "id")}
    before = row_counts()

    @given(parameter=st.sampled_from(parameters), value=odd_values)
    @example(parameter=("/api/v1/cases/", "query", "limit"), value="99999999999999999999")
    @example(parameter=("/api/v1/cases/", "query", "offset"), value="99999999999999999999")
    @example(parameter=("/api/v1/cases/", "query", "state"), value="\x00")
    @hypothesis_settings(max_examples=80, **FAST)
    def check(parameter, value):
        path, where, name = parameter
        if where == "path":
            response = api.get(path.replace("{" + name + "}", quote(value, safe="")))
            # " 7" or "007" may name case 7 (int() reads them); anything else is no case.
            assert response.status_code in (200, 404), (name, value[:30], response.status_code)
            assert response.status_code == 404 or response.json()["id"] in ids
            return
        response = api.get(path, {name: value})
        if "\x00" in value:
            assert response.status_code == 400 and response.json() == {
                "detail": "The query string holds a NUL character.",
                "errors": {name: ["The value holds a NUL character."]},
            }
            return
        if name in FILTERS and value != "":
            # No odd value is a state, a location code, a promotion or a YYYY-MM-DD day:
            # a 400 naming the parameter (it was an empty list), nothing read or written.
            assert response.status_code == 400, (name, value[:30], response.status_code)
            assert set(response.json()["errors"]) == {name}, response.json()
            assert row_counts() == before
            return
        assert response.status_code == 200, (name, value[:30], response.status_code)
        body = response.json()
        assert body["count"] == 3
        assert {r["id"] for r in body["results"]} <= ids and len(body["results"]) <= MAX_PAGE_SIZE
        assert row_counts() == before

    check()
    # The two, exactly: all three cases on one capped page; an empty page past the end.
    body = api.get("/api/v1/cases/", {"limit": "99999999999999999999"}).json()
    assert (body["count"], len(body["results"])) == (3, 3)
    body = api.get("/api/v1/cases/", {"offset": "99999999999999999999"}).json()
    assert (body["count"], body["results"], body["next"]) == (3, [], None)


def test_every_console_page_survives_huge_and_odd_ids_page_numbers_and_orderings(location, admin_user):
    """Each model page of the billing console (list, page number, ordering, search, filter,
    object id, history, the case's action pages) and the dashboard: a 4xx, a redirect or
    the page, never a 5xx. (`?location=²` broke the dashboard: '²'.isdigit() is true.)"""
    case = make_case(location)
    client = Client(raise_request_exception=False)
    verified_login(client, admin_user)
    before = row_counts()
    # Past a 64-bit column, past int()'s 4,300 digits, and a digit int() refuses.
    huge = ["99999999999999999999", "9" * 5_000, "²"]
    urls = []
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for value in huge:
            urls += [f"{base}?p={value}", f"{base}?o={value}", f"{base}?o=1.{value}", f"{base}?q={value}", f"{base}?id__exact={value}"]
            urls += [f"{base}{quote(value)}/change/", f"{base}{quote(value)}/history/"]
        urls += [f"{base}?q=%00", f"{base}%00/change/"]
    for value in huge + ["%00"]:
        urls += [f"/admin/dashboard/?location={value}", f"/admin/dashboard/?weeks={value}", f"/admin/dashboard.csv?location={value}"]
        urls += [f"/admin/financing/financedcase/{value}/{action}/" for action in ("resume", "retry", "cancel", "resend", "compare", "correct")]
        urls += [f"/admin/financing/financedcase/export.csv?{param}={value}" for param in ("p", "o", "q", "location", "location__id__exact")]
        urls += [f"{base}?location={value}" for base in ("/admin/financing/financedcase/", "/admin/financing/correction/", "/admin/financing/shadowcomparison/")]
        urls += [f"/admin/financing/financedcase/?location__id__exact={value}", f"/admin/financing/financedcase/?state__exact={value}"]
    failures = []
    for url in urls:
        response = client.get(url)
        if response.status_code >= 500:
            failures.append((url[:90], response.status_code))
    assert failures == []
    assert row_counts() == before
    assert FinancedCase.objects.get(pk=case.pk).state == case.state
