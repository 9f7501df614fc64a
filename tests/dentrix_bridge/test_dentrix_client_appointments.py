"""DentrixConnectorClient.appointments_on (contract v2.1) over HTTP against the connector
sandbox, every product: the demo schedule read into the port's Appointment, the errors
split as the port promises; and the strict reading of answers a sandbox does not send
(a stub session).

The sandbox clock is set to Thursday 2031-03-06 15:00 UTC (10:00 in New York), never
computed at import.
"""

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import requests

from dentrix_bridge.client import DentrixConnectorClient
from financing.ports import Appointment, PermanentPartnerError, TransientPartnerError
from sandboxes.dentrix import serve_in_thread

PRODUCTS = ("dentrix_g", "dentrix_enterprise", "dentrix_ascend", "eaglesoft")
FRIDAY = date(2031, 3, 7)


def utc(hour, minute=0):
    return datetime(2031, 3, 7, hour, minute, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def servers():
    running = {product: serve_in_thread(port=0, product=product) for product in PRODUCTS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture(autouse=True)
def thursday(servers):
    for server in servers.values():
        requests.post(f"{server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
        requests.post(f"{server.base_url}/_sandbox/clock", json={"now": "2031-03-06T15:00:00Z"}, timeout=5).raise_for_status()


def client_of(servers, product="dentrix_g"):
    return DentrixConnectorClient(servers[product].base_url, "sandbox", product=product)


def fault(server, **spec):
    answer = requests.post(f"{server.base_url}/_sandbox/faults", json={"path_prefix": "/v1/appointments", **spec}, timeout=5)
    answer.raise_for_status()


@pytest.mark.parametrize("product", PRODUCTS)
def test_tomorrows_appointments_are_read_into_the_port(servers, product):
    appointments = client_of(servers, product).appointments_on(FRIDAY)
    assert [(a.patient_id, a.guarantor_id, a.starts_at, a.clinic_id, a.treatment_plan_id, a.planned_fees)
            for a in appointments] == [
        ("1001", "1001", utc(14), "1", "5001", Decimal("1680.00")),
        ("1002", "1002", utc(14, 30), "1", "5002", Decimal("4150.00")),
        ("1003", "1003", utc(15), "1", "5003", Decimal("2710.00")),
        ("1004", "1004", utc(16), "1", "5004", Decimal("2685.00")),
        ("1008", "1008", utc(16), "2", "5008", Decimal("1290.00")),
        ("1010", "1010", utc(16, 30), "1", "5010", Decimal("1560.00")),
        ("1011", "1011", utc(18), "1", "5011", Decimal("2150.00")),
        ("1009", "1009", utc(18, 30), "3", "5009", Decimal("1780.00")),
        ("1005", "1005", utc(19), "1", "5005", Decimal("1365.00")),
        ("1007", "1001", utc(20), "1", "5007", Decimal("705.00")),
        ("1006", "1006", utc(21), "1", "5006", Decimal("255.00")),
    ]
    assert appointments[0] == Appointment(
        appointment_id="2031030701", patient_id="1001", guarantor_id="1001", starts_at=utc(14), clinic_id="1",
        treatment_plan_id="5001", planned_fees=Decimal("1680.00"),
    )
    assert all(a.starts_at.utcoffset().total_seconds() == 0 for a in appointments)


def test_a_day_without_appointments_is_an_empty_list(servers):
    assert client_of(servers).appointments_on(date(2031, 3, 8)) == []  # Saturday


def test_a_booked_visit_without_planned_treatment_reads_as_no_plan_and_no_fees(servers):
    server = servers["dentrix_g"]
    answer = requests.post(f"{server.base_url}/_sandbox/appointments",
                           json={"patient_id": "1001", "starts_at": "2031-03-08T09:00"}, timeout=5)
    assert answer.status_code == 201, answer.text
    (booked,) = client_of(servers).appointments_on(date(2031, 3, 8))
    assert (booked.appointment_id, booked.treatment_plan_id, booked.planned_fees) == ("3001", "", Decimal("0.00"))


def test_the_request_names_the_day_and_nothing_else(servers):
    client_of(servers).appointments_on(FRIDAY)
    log = requests.get(f"{servers['dentrix_g'].base_url}/_sandbox/requests", timeout=5).json()
    assert log == [{"method": "GET", "path": "/v1/appointments", "status": 200, "fault": None}]


def test_a_connector_without_the_endpoint_must_be_upgraded(servers):
    fault(servers["dentrix_ascend"], mode="error", status=404)
    with pytest.raises(PermanentPartnerError) as caught:
        client_of(servers, "dentrix_ascend").appointments_on(FRIDAY)
    assert str(caught.value) == (
        "The Dentrix Ascend connector does not list appointments (contract 2 or older): upgrade it to contract 2.1."
    )
    assert caught.value.status == 404


@pytest.mark.parametrize("product, status, retry_after", [("dentrix_g", 503, 30), ("eaglesoft", 429, 5)])
def test_an_outage_or_slow_down_is_transient(servers, product, status, retry_after):
    fault(servers[product], mode="error", status=status, retry_after=retry_after)
    with pytest.raises(TransientPartnerError) as caught:
        client_of(servers, product).appointments_on(FRIDAY)
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


def test_a_refused_query_is_permanent_with_the_connectors_words(servers):
    fault(servers["dentrix_g"], mode="error", status=400)
    with pytest.raises(PermanentPartnerError) as caught:
        client_of(servers).appointments_on(FRIDAY)
    assert type(caught.value) is PermanentPartnerError
    assert "refused the request (sandbox fault: HTTP 400)" in str(caught.value)


# --- strict reading, with a stub session ---------------------------------------------------

GOOD = {
    "appointment_id": "3001", "patient_id": "1001", "guarantor_id": "1001", "starts_at": "2031-03-07T14:00:00Z",
    "clinic_id": "1", "treatment_plan_id": "5001", "procedure_ids": ["9001"], "planned_fees": "1250.00",
}


class StubSession:
    def __init__(self, body):
        self.body = body
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        answer = requests.Response()
        answer.status_code = 200
        answer._content = json.dumps(self.body).encode()
        return answer


def read(body):
    session = StubSession(body)
    client = DentrixConnectorClient("http://connector.test", "secret-key", session=session)
    return client.appointments_on(FRIDAY), session


def test_the_query_is_the_iso_date():
    _, session = read([])
    method, url, kwargs = session.calls[0]
    assert (method, url, kwargs["params"]) == ("GET", "http://connector.test/v1/appointments", {"date": "2031-03-07"})
    assert kwargs["headers"]["X-API-Key"] == "secret-key"


@pytest.mark.parametrize("changes, expected", [
    ({"starts_at": "2031-03-07T09:00:00-05:00"}, {"starts_at": utc(14)}),
    ({"starts_at": "2031-03-07T14:00:00.250000+00:00"}, {"starts_at": utc(14).replace(microsecond=250000)}),
    ({"clinic_id": None}, {"clinic_id": ""}),
    ({"clinic_id": ""}, {"clinic_id": ""}),
    ({"treatment_plan_id": None, "procedure_ids": [], "planned_fees": "0.00"},
     {"treatment_plan_id": "", "planned_fees": Decimal("0.00")}),
    ({"planned_fees": "1250"}, {"planned_fees": Decimal("1250")}),
])
def test_answers_within_the_contract_are_read(changes, expected):
    (appointment,), _ = read([{**GOOD, **changes}])
    for name, value in expected.items():
        assert getattr(appointment, name) == value
    assert appointment.starts_at.tzinfo == timezone.utc


@pytest.mark.parametrize("changes", [
    {"starts_at": "2031-03-07T14:00:00"},  # no offset: names no moment
    {"starts_at": "2031-03-07 14:00:00Z"},
    {"starts_at": "2031-03-07"},
    {"starts_at": 1930654800},
    {"planned_fees": 1250.0},  # a float loses cents
    {"planned_fees": "-1.00"},
    {"planned_fees": "12.345"},
    {"planned_fees": "1,250.00"},
    {"clinic_id": 1},
    {"patient_id": 1001},
    {"patient_id": ""},
    {"guarantor_id": None},
    {"appointment_id": ""},
    {"treatment_plan_id": 5001},
    {"procedure_ids": "9001"},
    {"procedure_ids": [9001]},
])
def test_an_answer_outside_the_contract_is_a_mismatch_and_never_echoed(changes):
    with pytest.raises(TransientPartnerError) as caught:
        read([{**GOOD, **changes}])
    assert str(caught.value) == "Dentrix's answer for the appointments could not be read (contract mismatch)"


@pytest.mark.parametrize("body", [
    {"appointments": [GOOD]},  # an envelope: the contract's lists are bare arrays
    [{name: value for name, value in GOOD.items() if name != "treatment_plan_id"}],
    [{name: value for name, value in GOOD.items() if name != "guarantor_id"}],
])
def test_a_missing_field_or_an_envelope_is_a_mismatch(body):
    with pytest.raises(TransientPartnerError, match="could not be read"):
        read(body)
