"""OpenDentalClient.appointments_on over HTTP against the Open Dental sandbox (the demo day,
a booked visit, the calls it makes, the office's zone), and its reading of answers the
sandbox does not give (an Open Dental that ignores a filter, fields out of shape) through a
stub session.

The sandbox clock is set to Thursday 2031-03-06 15:00 UTC (08:00 in Boise, Mountain
Standard Time), never computed at import.
"""

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import requests

from financing.ports import Appointment, PermanentPartnerError, TransientPartnerError
from opendental_bridge.client import OpenDentalClient

FRIDAY = date(2031, 3, 7)


def utc(hour, minute=0, day=7):
    return datetime(2031, 3, day, hour, minute, tzinfo=timezone.utc)


@pytest.fixture
def thursday(od):
    od.control("POST", "/clock", {"now": "2031-03-06T15:00:00Z"})
    return od


def client_for(od, time_zone="America/Boise"):
    return OpenDentalClient(od.api, "sandbox-customer", developer_key="sandbox-developer", time_zone=time_zone)


def test_the_demo_day_is_read_into_the_port(thursday):
    appointments = client_for(thursday).appointments_on(FRIDAY)
    assert [(a.appointment_id, a.patient_id, a.guarantor_id, a.starts_at, a.clinic_id, a.treatment_plan_id,
             a.planned_fees) for a in appointments] == [
        ("201", "101", "101", utc(16), "1", "501", Decimal("1680.00")),
        ("202", "102", "102", utc(16, 30), "1", "502", Decimal("4150.00")),
        ("203", "103", "103", utc(17), "1", "503", Decimal("2710.00")),
        ("210", "108", "108", utc(17), "2", "508", Decimal("1290.00")),
        ("211", "109", "109", utc(17, 30), "", "509", Decimal("1780.00")),  # ClinicNum 0: no clinic
        ("204", "104", "104", utc(18), "1", "504", Decimal("2685.00")),
        ("205", "110", "110", utc(18, 30), "1", "510", Decimal("1560.00")),
        ("206", "111", "111", utc(20), "1", "511", Decimal("2150.00")),
        ("207", "105", "105", utc(21), "1", "505", Decimal("1365.00")),
        ("208", "107", "101", utc(22), "1", "507", Decimal("705.00")),  # the minor, on his mother's account
        ("209", "106", "106", utc(23), "1", "506", Decimal("255.00")),
    ]


def test_a_visit_is_read_with_three_calls_and_its_planned_work_only(od):
    patient = od.new_patient("Okafor", fees=("1250.00", "310.00"))
    first, second = patient["ProcNums"]
    od.control("POST", "/appointments", {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T09:15",
                                         "procedure_ids": [first, second]})
    od.control("POST", "/appointments", {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T15:00"})
    od.control("POST", "/appointments", {"patient_id": str(patient["PatNum"]), "starts_at": "2031-04-07T16:00",
                                         "AptStatus": "Broken"})
    before = len(od.requests())
    visits = client_for(od).appointments_on(date(2031, 4, 7))
    assert visits == [
        Appointment("2001", "1001", "1001", datetime(2031, 4, 7, 15, 15, tzinfo=timezone.utc), "1", "5001",
                    Decimal("1560.00")),  # 09:15 in Boise, summer time
        Appointment("2002", "1001", "1001", datetime(2031, 4, 7, 21, 0, tzinfo=timezone.utc), "1", "",
                    Decimal("0.00")),  # a visit with no planned work: no plan
    ]
    calls = [(r["method"], r["path"]) for r in od.requests()[before:]]
    assert calls == [
        ("GET", "/api/v1/appointments"), ("GET", "/api/v1/procedurelogs"), ("GET", "/api/v1/patients/1001"),
        ("GET", "/api/v1/treatplans"), ("GET", "/api/v1/procedurelogs"),
    ]
    # The work done is no longer planned: its fee leaves the visit.
    od.control("POST", f"/patients/{patient['PatNum']}/post-production")
    assert client_for(od).appointments_on(date(2031, 4, 7))[0].planned_fees == Decimal("0.00")


def test_an_empty_day_costs_one_call(thursday):
    assert client_for(thursday).appointments_on(date(2031, 3, 8)) == []
    assert [(r["method"], r["path"]) for r in thursday.requests()] == [("GET", "/api/v1/appointments")]


def test_without_the_offices_zone_the_schedule_cannot_be_read_and_nothing_is_asked(od):
    with pytest.raises(PermanentPartnerError) as caught:
        client_for(od, time_zone=None).appointments_on(FRIDAY)
    assert str(caught.value) == (
        "Open Dental keeps appointment times without a time zone: Chairside needs the office's time zone to read "
        "the schedule; give this location's Open Dental connection its time zone"
    )
    assert od.requests() == []


def test_an_unknown_zone_fails_at_once():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        OpenDentalClient("http://od.test/api/v1", "key", time_zone="Mars/Olympus")


def test_a_key_without_read_all_is_refused_with_what_to_do(od):
    od.permissions("Comm", "PayPlans")
    with pytest.raises(PermanentPartnerError) as caught:
        client_for(od).appointments_on(FRIDAY)
    assert "needs the Read All permission" in str(caught.value) and caught.value.status == 401


# --- an Open Dental the sandbox is not: a stub session -------------------------------------

APPOINTMENT = {"AptNum": 31, "PatNum": 72, "AptStatus": "Scheduled", "AptDateTime": "2031-03-07 09:00:00",
               "ClinicNum": 3, "ProcDescript": "Crn", "serverDateTime": "2031-03-06 08:00:00"}
PROCEDURE = {"ProcNum": 848, "PatNum": 72, "AptNum": 31, "ProcFee": "1250.00", "ProcStatus": "TP", "procCode": "D2740"}


class Stub:
    """Answers by path, records the paths asked."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def request(self, method, url, **kwargs):
        path = url.split("/api/v1", 1)[1]
        self.asked.append((path, kwargs.get("params")))
        answer = requests.Response()
        answer.status_code = 200
        answer._content = json.dumps(self.answers[path]).encode()
        return answer


def read(appointments, procedures=(PROCEDURE,), patient=None, plans=None):
    stub = Stub({
        "/appointments": list(appointments), "/procedurelogs": list(procedures),
        "/patients/72": patient or {"PatNum": 72, "Guarantor": 70},
        "/treatplans": plans or [{"TreatPlanNum": 9, "TPStatus": "Inactive"}, {"TreatPlanNum": 12, "TPStatus": "Active"}],
    })
    client = OpenDentalClient("http://od.test/api/v1", "key", developer_key="dev", session=stub, time_zone="America/Boise")
    return client.appointments_on(FRIDAY), stub


def test_the_query_names_the_day_and_the_status():
    _, stub = read([])
    assert stub.asked == [("/appointments", {"date": "2031-03-07", "AptStatus": "Scheduled"})]


def test_rows_an_older_open_dental_did_not_filter_are_dropped():
    visits, stub = read([
        {**APPOINTMENT, "AptNum": 30, "AptStatus": "Broken"},
        {**APPOINTMENT, "AptNum": 32, "AptDateTime": "2031-03-08 09:00:00"},
        APPOINTMENT,
    ], procedures=[
        PROCEDURE,
        {**PROCEDURE, "ProcNum": 849, "AptNum": 44, "ProcFee": "900.00"},  # another visit's
        {**PROCEDURE, "ProcNum": 850, "ProcStatus": "C", "ProcFee": 310.0},  # done: no longer planned
        {**PROCEDURE, "ProcNum": 851, "ProcFee": 120.0},  # a JSON number, read exactly
    ])
    assert visits == [Appointment("31", "72", "70", utc(16), "3", "12", Decimal("1370.00"))]
    assert ("/procedurelogs", {"AptNum": "31"}) in stub.asked


@pytest.mark.parametrize("changes", [
    {"AptDateTime": "2031-03-07T09:00:00"},
    {"AptDateTime": "0001-01-01 00:00:00"},
    {"AptDateTime": None},
    {"AptNum": "thirty-one"},
    {"PatNum": True},
    {"ClinicNum": "north"},
    {"AptStatus": 1},
])
def test_an_appointment_out_of_shape_is_a_mismatch_never_echoed(changes):
    with pytest.raises(TransientPartnerError) as caught:
        read([{**APPOINTMENT, **changes}])
    assert str(caught.value) == "Open Dental's answer for the appointments could not be read (unexpected fields)"


@pytest.mark.parametrize("procedure, patient, what", [
    ({**PROCEDURE, "ProcFee": True}, None, "the appointment's procedures"),
    ({**PROCEDURE, "ProcFee": "1,250.00"}, None, "the appointment's procedures"),
    (PROCEDURE, {"PatNum": 72, "Guarantor": "Ava"}, "the patient"),
])
def test_a_procedure_or_patient_out_of_shape_is_a_mismatch(procedure, patient, what):
    with pytest.raises(TransientPartnerError) as caught:
        read([APPOINTMENT], procedures=[procedure], patient=patient)
    assert str(caught.value) == f"Open Dental's answer for {what} could not be read (unexpected fields)"

