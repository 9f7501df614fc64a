"""Contract v2.1 in the connector sandbox, over plain HTTP: GET /v1/appointments?date= (the
demo schedule on the clinic's business days, each clinic's own day and zone, the joined
guarantor, plan and planned fees), POST /_sandbox/appointments (booking, its rules, the
journal) and the date's validation.

The sandbox clock is set to fixed moments (never the real date, never computed at import):
Thursday 2031-03-06 15:00 UTC is 10:00 in New York; the US moves to summer time on Sunday
2031-03-09, so Friday's 09:00 in New York is 14:00 UTC and Monday's is 13:00 UTC.
"""

import subprocess
import sys
from decimal import Decimal

import pytest
import requests

from sandboxes.dentrix import make_plan, serve_in_thread
from tests.sandboxes.connector import KEY, call, post_production, refused

THURSDAY = "2031-03-06T15:00:00Z"
THRESHOLD = Decimal("500.00")  # the pre-screen's default
PRODUCTS = ("dentrix_g", "dentrix_enterprise", "dentrix_ascend", "eaglesoft")

# Clinic 1's demo day on Friday 2031-03-07 (EST: 09:00 = 14:00Z), then clinics 2 (Chicago,
# CST: 10:00 = 16:00Z) and 3 (Los Angeles, PST: 10:30 = 18:30Z), in order of their start.
FRIDAY = [
    # appointment id, patient, guarantor, starts_at, clinic, plan, procedures, planned fees
    ("2031030701", "1001", "1001", "2031-03-07T14:00:00Z", "1", "5001", ["9001", "9002", "9003"], "1680.00"),
    ("2031030702", "1002", "1002", "2031-03-07T14:30:00Z", "1", "5002", ["9004", "9005", "9006"], "4150.00"),
    ("2031030703", "1003", "1003", "2031-03-07T15:00:00Z", "1", "5003", ["9007", "9008", "9009"], "2710.00"),
    ("2031030704", "1004", "1004", "2031-03-07T16:00:00Z", "1", "5004", ["9010", "9011", "9012"], "2685.00"),
    ("2031030710", "1008", "1008", "2031-03-07T16:00:00Z", "2", "5008", ["9027", "9028"], "1290.00"),
    ("2031030705", "1010", "1010", "2031-03-07T16:30:00Z", "1", "5010", ["9032", "9033"], "1560.00"),
    ("2031030706", "1011", "1011", "2031-03-07T18:00:00Z", "1", "5011", ["9034", "9035"], "2150.00"),
    ("2031030711", "1009", "1009", "2031-03-07T18:30:00Z", "3", "5009", ["9029", "9030", "9031"], "1780.00"),
    ("2031030707", "1005", "1005", "2031-03-07T19:00:00Z", "1", "5005", ["9013", "9014", "9015"], "1365.00"),
    ("2031030708", "1007", "1001", "2031-03-07T20:00:00Z", "1", "5007",
     ["9020", "9021", "9022", "9023", "9024", "9025", "9026"], "705.00"),
    ("2031030709", "1006", "1006", "2031-03-07T21:00:00Z", "1", "5006", ["9018", "9019"], "255.00"),
]
FIELDS = ("appointment_id", "patient_id", "guarantor_id", "starts_at", "clinic_id", "treatment_plan_id",
          "procedure_ids", "planned_fees")


@pytest.fixture(scope="module")
def servers():
    running = {product: serve_in_thread(port=0, product=product) for product in PRODUCTS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture(autouse=True)
def clean(servers):
    for server in servers.values():
        requests.post(f"{server.base_url}/_sandbox/reset", timeout=5).raise_for_status()


@pytest.fixture
def server(servers):
    return servers["dentrix_g"]


def set_clock(server, moment):
    answer = requests.post(f"{server.base_url}/_sandbox/clock", json={"now": moment}, timeout=5)
    assert answer.status_code == 200, answer.text


def on(server, day):
    answer = requests.get(f"{server.base_url}/v1/appointments", params={"date": day}, headers=KEY, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def book(server, body):
    return call(server, "POST", "/_sandbox/appointments", body, key=False)


def summary(appointments):
    return [(a["patient_id"], a["starts_at"], a["planned_fees"]) for a in appointments]


@pytest.mark.parametrize("product", PRODUCTS)
def test_tomorrow_holds_the_demo_day_in_every_product(servers, product):
    set_clock(servers[product], THURSDAY)
    assert on(servers[product], "2031-03-07") == [dict(zip(FIELDS, row)) for row in FRIDAY]


def test_the_demo_day_has_the_pre_screen_personas_a_minor_and_one_below_the_threshold(server):
    set_clock(server, THURSDAY)
    clinic_1 = [a for a in on(server, "2031-03-07") if a["clinic_id"] == "1"]
    surnames = {a["patient_id"]: call(server, "GET", f"/v1/patients/{a['patient_id']}").json()["last_name"]
                for a in clinic_1}
    assert surnames["1010"].startswith("Cardholder-") and surnames["1011"].startswith("Nomatch-")
    over = [a["patient_id"] for a in clinic_1 if Decimal(a["planned_fees"]) >= THRESHOLD and a["patient_id"] != "1007"]
    assert over == ["1001", "1002", "1003", "1004", "1010", "1011", "1005"]
    minor = call(server, "GET", "/v1/patients/1007").json()
    assert (minor["guarantor_id"], minor["birth_date"]) == ("1001", "2014-06-02")
    assert [(a["patient_id"], a["planned_fees"]) for a in clinic_1 if Decimal(a["planned_fees"]) < THRESHOLD] == [
        ("1006", "255.00")
    ]


def test_the_new_demo_patients_are_their_own_guarantors_with_one_accepted_plan(server):
    for patient_id, plan_id, total, procedures in (
        ("1010", "5010", "1560.00", [("9032", "D2740", "1250.00"), ("9033", "D2950", "310.00")]),
        ("1011", "5011", "2150.00", [("9034", "D3310", "900.00"), ("9035", "D2740", "1250.00")]),
    ):
        patient = call(server, "GET", f"/v1/patients/{patient_id}").json()
        assert (patient["guarantor_id"], patient["clinic_id"]) == (patient_id, "1")
        (plan,) = call(server, "GET", f"/v1/patients/{patient_id}/treatment-plans").json()
        assert (plan["treatment_plan_id"], plan["status"], plan["total"]) == (plan_id, "accepted", total)
        assert [(p["procedure_id"], p["code"], p["fee"], p["status"]) for p in plan["procedures"]] == [
            (*procedure, "planned") for procedure in procedures
        ]


def test_the_demo_schedule_covers_today_and_the_next_ten_business_days(server):
    set_clock(server, THURSDAY)
    assert len(on(server, "2031-03-06")) == 11  # today
    assert on(server, "2031-03-05") == []  # yesterday is gone
    assert on(server, "2031-03-08") == [] and on(server, "2031-03-09") == []  # the weekend
    monday = on(server, "2031-03-10")
    assert summary(monday)[0] == ("1001", "2031-03-10T13:00:00Z", "1680.00")  # 09:00 New York, summer time
    assert monday[0]["appointment_id"] == "2031031001"
    assert len(on(server, "2031-03-20")) == 11  # the tenth business day after Thursday
    assert on(server, "2031-03-21") == []  # the eleventh


def test_the_demo_schedule_moves_with_the_clock(server):
    set_clock(server, THURSDAY)
    assert on(server, "2031-03-21") == []
    requests.post(f"{server.base_url}/_sandbox/clock", json={"advance_seconds": 86400}, timeout=5).raise_for_status()
    assert on(server, "2031-03-06") == []
    assert [a["appointment_id"] for a in on(server, "2031-03-21")][:2] == ["2031032101", "2031032102"]


def test_each_clinic_has_its_own_day(server):
    # 01:00 on Friday in New York and Chicago's midnight, still 22:00 on Thursday in Los Angeles.
    set_clock(server, "2031-03-07T06:00:00Z")
    assert [(a["patient_id"], a["clinic_id"], a["starts_at"]) for a in on(server, "2031-03-06")] == [
        ("1009", "3", "2031-03-06T18:30:00Z"),
    ]
    assert len(on(server, "2031-03-07")) == 11


def test_the_database_zone_is_the_sandboxs_time_zone():
    running = serve_in_thread(port=0, time_zone="America/Denver")
    try:
        set_clock(running, THURSDAY)
        friday = {a["patient_id"]: a["starts_at"] for a in on(running, "2031-03-07")}
        # Clinic 1 keeps the database's zone (09:00 MST = 16:00Z); clinics 2 and 3 their own.
        assert (friday["1001"], friday["1008"], friday["1009"]) == (
            "2031-03-07T16:00:00Z", "2031-03-07T16:00:00Z", "2031-03-07T18:30:00Z",
        )
    finally:
        running.stop()


def test_an_unknown_time_zone_is_refused_at_start():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus': use an IANA name"):
        serve_in_thread(port=0, time_zone="Mars/Olympus")
    result = subprocess.run(
        [sys.executable, "-m", "sandboxes.dentrix", "--port", "0", "--time-zone", "Mars/Olympus"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in result.stderr


@pytest.mark.parametrize("query, message", [
    ("", "Name the day: GET /v1/appointments?date=YYYY-MM-DD."),
    ("?date=", "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."),
    ("?date=2031-02-30", "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."),
    ("?date=20310307", "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."),
    ("?date=2031-3-7", "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."),
    ("?date=tomorrow", "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."),
    ("?date=2031-03-07&date=2031-03-10", "Ask for one day at a time: one date=YYYY-MM-DD."),
])
def test_a_bad_date_is_a_400_saying_how_to_write_one(server, query, message):
    refused(call(server, "GET", f"/v1/appointments{query}"), 400, message, {"date": message})


def test_the_far_ends_of_the_calendar_are_empty_days_not_errors(server):
    assert on(server, "0001-01-01") == [] and on(server, "9999-12-31") == []


def test_the_appointments_need_the_key(server):
    refused(call(server, "GET", "/v1/appointments?date=2031-03-07", key=False), 401,
            "Missing or wrong API key: send the connector's key in the X-API-Key header.")


def test_booking_at_the_clinics_wall_clock_time(server):
    answer = book(server, {"patient_id": "1008", "starts_at": "2031-03-12T08:15", "procedure_ids": ["9027"]})
    assert answer.status_code == 201, answer.text
    booked = {
        "appointment_id": "3001", "patient_id": "1008", "guarantor_id": "1008",
        "starts_at": "2031-03-12T13:15:00Z",  # 08:15 in Chicago, summer time
        "clinic_id": "2", "treatment_plan_id": "5008", "procedure_ids": ["9027"], "planned_fees": "980.00",
    }
    assert answer.json() == booked
    assert [a for a in on(server, "2031-03-12") if a["appointment_id"] == "3001"] == [booked]


def test_a_moment_is_booked_on_the_clinics_day(server):
    # 02:00 UTC on Friday is 22:00 on Thursday in New York (summer time): Thursday's book.
    answer = book(server, {"patient_id": "1001", "starts_at": "2031-04-04T02:00:00Z", "procedure_ids": ["9003"]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["starts_at"] == "2031-04-04T02:00:00Z"
    assert "3001" in [a["appointment_id"] for a in on(server, "2031-04-03")]
    assert "3001" not in [a["appointment_id"] for a in on(server, "2031-04-04")]
    offset = book(server, {"patient_id": "1001", "starts_at": "2031-04-03T21:30-04:00", "procedure_ids": []})
    assert offset.json()["starts_at"] == "2031-04-04T01:30:00Z"


def test_a_visit_without_planned_treatment_has_no_plan_and_no_fees(server):
    answer = book(server, {"patient_id": "1001", "starts_at": "2031-04-05T10:00"})
    assert answer.status_code == 201, answer.text
    assert (answer.json()["treatment_plan_id"], answer.json()["procedure_ids"], answer.json()["planned_fees"]) == (
        None, [], "0.00",
    )


def test_a_booking_may_name_another_clinic(server):
    answer = book(server, {"patient_id": "1001", "starts_at": "2031-04-07T09:00", "clinic_id": "3"})
    assert (answer.json()["clinic_id"], answer.json()["starts_at"]) == ("3", "2031-04-07T16:00:00Z")


@pytest.mark.parametrize("body, fields", [
    ({}, {"patient_id": "This field is required.", "starts_at": "This field is required."}),
    ({"patient_id": 1001, "starts_at": "2031-04-07T09:00"}, {"patient_id": 'A patient id is text, e.g. "1001".'}),
    ({"patient_id": "999", "starts_at": "2031-04-07T09:00", "procedure_ids": ["9001"]},
     {"patient_id": "Patient 999 was not found in Dentrix."}),
    ({"patient_id": "1001", "starts_at": "2031-04-07"}, {"starts_at": "START"}),
    ({"patient_id": "1001", "starts_at": "2031-04-07T09:00:30"}, {"starts_at": "START"}),
    ({"patient_id": "1001", "starts_at": "2031-04-07 09:00"}, {"starts_at": "START"}),
    ({"patient_id": "1001", "starts_at": "2031-04-31T09:00"}, {"starts_at": "START"}),
    ({"patient_id": "1001", "starts_at": 1900000000}, {"starts_at": "START"}),
    ({"patient_id": "1001", "starts_at": "2031-04-07T09:00", "clinic_id": "no/such"},
     {"clinic_id": 'A clinic id: up to 20 letters, digits, - or _ ("" for none).'}),
    ({"patient_id": "1001", "starts_at": "2031-04-07T09:00", "procedure_ids": "9001"},
     {"procedure_ids": 'Procedure ids must be a list of ids, e.g. ["9001", "9002"].'}),
    ({"patient_id": "1001", "starts_at": "2031-04-07T09:00", "procedure_ids": ["9001", 9002, "9001", "9004", ""]},
     {"procedure_ids[1]": 'A procedure id is text, e.g. "9001".', "procedure_ids[2]": "Procedure 9001 is listed twice.",
      "procedure_ids[3]": "Procedure 9004 is not on patient 1001's treatment plans.",
      "procedure_ids[4]": 'A procedure id is text, e.g. "9001".'}),
])
def test_a_bad_booking_is_refused_field_by_field_and_books_nothing(server, body, fields):
    start = (
        "Enter the start as YYYY-MM-DDTHH:MM (the clinic's wall-clock time, on a whole minute) or as a "
        "moment with its offset, e.g. 2027-02-15T14:00:00Z."
    )
    fields = {name: start if message == "START" else message for name, message in fields.items()}
    first = next(iter(fields.values()))
    message = first if len(fields) == 1 else f"{first} (and {len(fields) - 1} more problem(s) with the appointment)"
    refused(book(server, body), 400, message, fields)
    assert server.app.store.appointments == {}
    assert book(server, {"patient_id": "1001", "starts_at": "2031-04-07T09:00"}).json()["appointment_id"] == "3001"


def test_only_planned_procedures_of_one_plan_are_booked(server):
    post_production(server, "1007")
    refused(book(server, {"patient_id": "1007", "starts_at": "2031-04-07T09:00", "procedure_ids": ["9020"]}), 400,
            "Procedure 9020 is completed: only planned procedures are scheduled.",
            {"procedure_ids[0]": "Procedure 9020 is completed: only planned procedures are scheduled."})
    with server.app.store.lock:
        server.app.store.put("plans", make_plan("6001", "1001", [
            {"code": "D1110", "tooth": "", "surface": "", "fee": "120.00"},
        ]))
    message = "Book one treatment plan's procedures on an appointment: these are on plans 5001, 6001."
    refused(book(server, {"patient_id": "1001", "starts_at": "2031-04-07T09:00", "procedure_ids": ["9001", "9101"]}),
            400, message, {"procedure_ids": message})
    assert server.app.store.appointments == {}


def test_the_planned_fees_are_read_from_the_plan_when_listed(server):
    answer = book(server, {"patient_id": "1004", "starts_at": "2031-04-07T09:00", "procedure_ids": ["9010", "9012"]})
    assert answer.json()["planned_fees"] == "1435.00"
    post_production(server, "1004")  # the procedures are done; the booking still names them
    (listed,) = [a for a in on(server, "2031-04-07") if a["appointment_id"] == "3001"]
    assert (listed["treatment_plan_id"], listed["planned_fees"]) == ("5004", "1435.00")


def test_booked_appointments_are_journaled_and_reset_clears_them(tmp_path):
    journal = tmp_path / "dentrix.jsonl"
    first = serve_in_thread(port=0, state_file=str(journal))
    try:
        assert book(first, {"patient_id": "1003", "starts_at": "2031-04-07T11:00", "procedure_ids": ["9007"]}).status_code == 201
    finally:
        first.stop()
    second = serve_in_thread(port=0, state_file=str(journal))
    try:
        assert summary([a for a in on(second, "2031-04-07") if a["appointment_id"] == "3001"]) == [
            ("1003", "2031-04-07T15:00:00Z", "1150.00"),
        ]
        assert book(second, {"patient_id": "1003", "starts_at": "2031-04-07T12:00"}).json()["appointment_id"] == "3002"
        requests.post(f"{second.base_url}/_sandbox/reset", timeout=5).raise_for_status()
        assert second.app.store.appointments == {}
        assert journal.read_text() == ""
    finally:
        second.stop()


def test_faults_apply_to_the_appointments(server):
    requests.post(f"{server.base_url}/_sandbox/faults", json={
        "method": "GET", "path_prefix": "/v1/appointments", "mode": "error", "status": 503,
    }, timeout=5).raise_for_status()
    assert call(server, "GET", "/v1/appointments?date=2031-03-07").status_code == 503
    assert call(server, "GET", "/v1/appointments?date=2031-03-07").status_code == 200
