"""The Open Dental sandbox's appointment book over raw HTTP: Appointments GET (a day, a
range, its filters, pages, plain-text refusals), the procedures on an appointment
(procedurelogs?AptNum=), the demo day on the office's next business day, and booking one
(POST /_sandbox/appointments: its rules, the procedures' AptNum, the journal).

The sandbox clock is set to fixed moments, never computed at import: Thursday 2031-03-06
15:00 UTC is 08:00 in Boise (the office's zone, Mountain Standard Time until Sunday
2031-03-09).
"""

import subprocess
import sys

import pytest
import requests

from sandboxes.opendental import serve_in_thread

AUTH = {"Authorization": "ODFHIR sandbox-developer/sandbox-customer"}
THURSDAY = "2031-03-06T15:00:00Z"
NEW_PATIENT = {
    "first_name": "Omar", "last_name": "Okafor", "birth_date": "1990-05-06", "phone": "+15555550177",
    "email": "omar@example.com", "address": {"line1": "7 Birch St", "city": "Springfield", "state": "IL", "zip": "62701"},
    "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": "428.00"},
                   {"code": "D2950", "tooth": "3", "surface": "", "fee": "300.00"}],
}
# The demo day: AptNum, AptDateTime's time, PatNum, ClinicNum, in order of their start.
DEMO_DAY = [
    (201, "09:00:00", 101, 1), (202, "09:30:00", 102, 1), (203, "10:00:00", 103, 1), (210, "10:00:00", 108, 2),
    (211, "10:30:00", 109, 0), (204, "11:00:00", 104, 1), (205, "11:30:00", 110, 1), (206, "13:00:00", 111, 1),
    (207, "14:00:00", 105, 1), (208, "15:00:00", 107, 1), (209, "16:00:00", 106, 1),
]


@pytest.fixture(scope="module")
def running():
    sandbox = serve_in_thread(port=0, requests_per_second=0)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def od(running):
    requests.post(f"{running.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    return running


def set_clock(od, moment):
    requests.post(f"{od.base_url}/_sandbox/clock", json={"now": moment}, timeout=5).raise_for_status()


def get(od, path, **params):
    return requests.get(f"{od.base_url}/api/v1{path}", params=params, headers=AUTH, timeout=5)


def appointments(od, **params):
    answer = get(od, "/appointments", **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def book(od, body):
    return requests.post(f"{od.base_url}/_sandbox/appointments", json=body, timeout=5)


def new_patient(od):
    answer = requests.post(f"{od.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_the_demo_day_is_on_the_offices_next_business_day(od):
    set_clock(od, THURSDAY)
    rows = appointments(od, date="2031-03-07")
    assert [(r["AptNum"], r["AptDateTime"], r["PatNum"], r["ClinicNum"], r["AptStatus"]) for r in rows] == [
        (apt, f"2031-03-07 {time}", pat, clinic, "Scheduled") for apt, time, pat, clinic in DEMO_DAY
    ]
    assert rows[0]["serverDateTime"][:16] == "2031-03-06 08:00"  # the office's wall clock
    assert (rows[0]["ProcDescript"], rows[0]["Op"], rows[0]["DateTimeArrived"]) == (
        "D2740, D2950, D1110", 1, "0001-01-01 00:00:00",
    )
    assert appointments(od, date="2031-03-06") == [] and appointments(od, date="2031-03-10") == []


def test_each_demo_visit_holds_its_patients_planned_procedures(od):
    fees = {}
    for apt, _, pat, _ in DEMO_DAY:
        procedures = get(od, "/procedurelogs", AptNum=apt).json()
        assert {(p["PatNum"], p["AptNum"], p["ProcStatus"]) for p in procedures} == {(pat, apt, "TP")}
        fees[pat] = sum(float(p["ProcFee"]) for p in procedures)
    assert fees == {101: 1680.0, 102: 4150.0, 103: 2710.0, 104: 2685.0, 105: 1365.0, 106: 255.0, 107: 705.0,
                    108: 1290.0, 109: 1780.0, 110: 1560.0, 111: 2150.0}
    # Fay's fillings are planned but not on the visit.
    assert [p["AptNum"] for p in get(od, "/procedurelogs", PatNum=106).json()] == [0, 0, 209, 209]


def test_the_pre_screen_personas_are_demo_patients_with_active_plans(od):
    for pat_num, last_name, plan_num in ((110, "Cardholder-Reyes", 510), (111, "Nomatch-Olsen", 511)):
        patient = get(od, f"/patients/{pat_num}").json()
        assert (patient["LName"], patient["Guarantor"], patient["ClinicNum"]) == (last_name, pat_num, 1)
        [plan] = get(od, "/treatplans", PatNum=pat_num).json()
        assert (plan["TreatPlanNum"], plan["TPStatus"]) == (plan_num, "Active")


def test_the_demo_day_moves_with_the_clock_over_the_weekend(od):
    set_clock(od, "2031-03-07T15:00:00Z")  # Friday
    assert appointments(od, date="2031-03-07") == []
    monday = appointments(od, date="2031-03-10")
    assert (len(monday), monday[0]["AptNum"], monday[0]["AptDateTime"]) == (11, 201, "2031-03-10 09:00:00")


def test_the_offices_today_is_its_own_date(od):
    # 05:00 UTC on Friday is still 22:00 on Thursday in Boise: tomorrow is Friday.
    set_clock(od, "2031-03-07T05:00:00Z")
    assert len(appointments(od, date="2031-03-07")) == 11


def test_the_office_zone_is_the_sandboxs_time_zone():
    sandbox = serve_in_thread(port=0, requests_per_second=0, time_zone="America/New_York")
    try:
        set_clock(sandbox, "2031-03-07T05:00:00Z")  # 00:00 on Friday in New York
        assert appointments(sandbox, date="2031-03-07") == []
        assert len(appointments(sandbox, date="2031-03-10")) == 11
    finally:
        sandbox.stop()


def test_the_filters_and_a_range(od):
    set_clock(od, THURSDAY)
    assert [r["AptNum"] for r in appointments(od, date="2031-03-07", ClinicNum=0)] == [211]
    assert [r["AptNum"] for r in appointments(od, date="2031-03-07", ClinicNum=2)] == [210]
    assert [r["AptNum"] for r in appointments(od, PatNum=107)] == [208]
    assert appointments(od, date="2031-03-07", AptStatus="Broken") == []
    assert len(appointments(od, dateStart="2031-03-01", dateEnd="2031-03-07")) == 11
    assert appointments(od, dateStart="2031-03-08") == []
    assert len(appointments(od, date="2031-03-07", Limit=5)) == 5
    assert [r["AptNum"] for r in appointments(od, date="2031-03-07", Offset=9)] == [208, 209]


@pytest.mark.parametrize("params, message", [
    ({"date": "2031-3-7"}, 'date is invalid. Use the format "yyyy-MM-dd".'),
    ({"date": "2031-02-30"}, 'date is invalid. Use the format "yyyy-MM-dd".'),
    ({"dateStart": "tomorrow"}, 'dateStart is invalid. Use the format "yyyy-MM-dd".'),
    ({"AptStatus": "Booked"}, "AptStatus is invalid. Use one of: Scheduled, Complete, UnschedList, ASAP, Broken, "
                              "Planned, PtNote, PtNoteCompleted."),
    ({"ClinicNum": "north"}, "ClinicNum is invalid."),
])
def test_a_bad_parameter_is_a_plain_text_400(od, params, message):
    answer = get(od, "/appointments", **params)
    assert (answer.status_code, answer.headers["Content-Type"].split(";")[0], answer.text) == (400, "text/plain", message)


def test_one_appointment_by_its_number(od):
    set_clock(od, THURSDAY)
    assert get(od, "/appointments/209").json()["AptDateTime"] == "2031-03-07 16:00:00"
    missing = get(od, "/appointments/999")
    assert (missing.status_code, missing.text) == (404, "Appointment not found.")


def test_booking_attaches_the_procedures(od):
    patient = new_patient(od)
    answer = book(od, {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T09:15",
                       "procedure_ids": [str(n) for n in patient["ProcNums"]]})
    assert answer.status_code == 201, answer.text
    row = answer.json()
    assert (row["AptNum"], row["PatNum"], row["AptDateTime"], row["ClinicNum"], row["AptStatus"], row["ProcDescript"]) == (
        2001, 1001, "2031-04-07 09:15:00", 1, "Scheduled", "D2740, D2950",
    )
    assert [p["AptNum"] for p in get(od, "/procedurelogs", AptNum=2001).json()] == [2001, 2001]
    assert [r["AptNum"] for r in appointments(od, date="2031-04-07")] == [2001]


def test_a_moment_is_booked_at_the_offices_time(od):
    patient = new_patient(od)
    # 04:30 UTC on Tuesday is 22:30 on Monday in Boise (summer time, UTC-6).
    row = book(od, {"patient_id": patient["PatNum"], "starts_at": "2031-04-08T04:30:00Z", "AptStatus": "Broken"}).json()
    assert (row["AptDateTime"], row["AptStatus"]) == ("2031-04-07 22:30:00", "Broken")
    assert appointments(od, date="2031-04-07", AptStatus="Scheduled") == []


@pytest.mark.parametrize("body, fields", [
    ({}, {"patient_id": "This field is required.", "starts_at": "This field is required."}),
    ({"patient_id": "999", "starts_at": "2031-04-07T09:00"}, {"patient_id": "No such patient."}),
    ({"patient_id": "101", "starts_at": "2031-04-07T09:00:30"}, {"starts_at": "START"}),
    ({"patient_id": "101", "starts_at": "2031-04-31 09:00"}, {"starts_at": "START"}),
    ({"patient_id": "101", "starts_at": "2031-04-07T09:00", "AptStatus": "Booked"},
     {"AptStatus": "AptStatus must be one of Scheduled, Complete, UnschedList, ASAP, Broken, Planned, PtNote, "
                   "PtNoteCompleted."}),
    ({"patient_id": "101", "starts_at": "2031-04-07T09:00", "clinic_id": "north"},
     {"clinic_id": 'A ClinicNum: digits, or "" for none.'}),
    ({"patient_id": "101", "starts_at": "2031-04-07T09:00", "procedure_ids": "901"},
     {"procedure_ids": "A list of ProcNums."}),
    ({"patient_id": "101", "starts_at": "2031-04-07T09:00", "procedure_ids": [901, "904"]},
     {"procedure_ids[0]": "Procedure 901 is already on appointment 201.",
      "procedure_ids[1]": "Procedure 904 is not one of this patient's."}),
])
def test_a_bad_booking_is_refused_field_by_field_and_books_nothing(od, body, fields):
    start = ("Enter the start as YYYY-MM-DDTHH:MM (the office's wall-clock time, on a whole minute) or as a moment "
             "with its offset, e.g. 2027-02-15T14:00:00Z.")
    fields = {name: start if message == "START" else message for name, message in fields.items()}
    answer = book(od, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["fields"] == fields
    assert od.app.store.all("appointments") == []


def test_only_treatment_planned_procedures_each_once(od):
    patient = new_patient(od)
    first, second = patient["ProcNums"]
    answer = book(od, {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T09:00",
                       "procedure_ids": [first, first]})
    assert answer.json()["fields"] == {"procedure_ids[1]": f"Procedure {first} is listed twice."}
    requests.post(f"{od.base_url}/_sandbox/patients/{patient['PatNum']}/post-production", timeout=5).raise_for_status()
    answer = book(od, {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T09:00", "procedure_ids": [second]})
    assert answer.json()["fields"] == {"procedure_ids[0]": f"Procedure {second} is not treatment planned (ProcStatus C)."}
    assert od.app.store.all("appointments") == []


def test_booked_appointments_are_journaled_and_reset_clears_them(tmp_path):
    journal = tmp_path / "od.jsonl"
    first = serve_in_thread(port=0, requests_per_second=0, state_file=str(journal))
    try:
        patient = new_patient(first)
        assert book(first, {"patient_id": patient["PatNum"], "starts_at": "2031-04-07T09:00",
                            "procedure_ids": patient["ProcNums"][:1]}).status_code == 201
    finally:
        first.stop()
    second = serve_in_thread(port=0, requests_per_second=0, state_file=str(journal))
    try:
        assert [r["AptNum"] for r in appointments(second, date="2031-04-07")] == [2001]
        assert [p["ProcNum"] for p in get(second, "/procedurelogs", AptNum=2001).json()] == patient["ProcNums"][:1]
        requests.post(f"{second.base_url}/_sandbox/reset", timeout=5).raise_for_status()
        assert appointments(second, date="2031-04-07") == [] and journal.read_text() == ""
    finally:
        second.stop()


def test_an_unknown_time_zone_stops_the_start():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        serve_in_thread(port=0, time_zone="Mars/Olympus")
    done = subprocess.run([sys.executable, "-m", "sandboxes.opendental", "--port", "0", "--time-zone", "Mars/Olympus"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown time zone 'Mars/Olympus'" in done.stderr
