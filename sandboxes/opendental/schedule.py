"""The office's appointment book, as Open Dental's Appointments GET answers it
(https://www.opendental.com/site/apiappointments.html).

Open Dental keeps `AptDateTime` as the office's wall-clock time ("2027-02-16 09:00:00"),
with no zone; the sandbox's office is in one zone (`app.time_zone`: --time-zone, demo-od's
America/Boise by default), which says what its today is. A procedure is on one appointment
(`procedurelog.AptNum`).

The demo appointments (`demo_data.DEMO_DAY`) are computed, not stored: each is always on the
office's next business day (Monday to Friday) by the sandbox's clock, so a demo run always
has a tomorrow, wherever a test moves the clock. Booked ones (`POST /_sandbox/appointments`)
are rows of the store's "appointments" table, journaled like every other.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import demo_data

DEFAULT_TIME_ZONE = "America/Boise"  # demo-od's (seed_demo)
STATUSES = ("Scheduled", "Complete", "UnschedList", "ASAP", "Broken", "Planned", "PtNote", "PtNoteCompleted")
NO_TIME = "0001-01-01 00:00:00"


def time_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ValueError (a clear one) for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as {DEFAULT_TIME_ZONE}") from None


def office_now(app) -> datetime:
    """The office's wall clock, by the sandbox's clock."""
    return datetime.fromtimestamp(app.clock.now(), app.time_zone).replace(tzinfo=None)


def wall_clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def appointment_record(apt_num: int, pat_num: int, when: str, clinic: int, status: str, proc_codes: list[str],
                       entered: str) -> dict:
    """An appointment row with Open Dental's fields and their usual values."""
    return {
        "AptNum": apt_num, "PatNum": pat_num, "AptStatus": status, "Pattern": "//XXXXXX//", "Confirmed": 19,
        "confirmed": "Not Called", "TimeLocked": "false", "Op": 1, "Note": "", "ProvNum": 1, "provAbbr": "DOC1",
        "ProvHyg": 0, "AptDateTime": when, "NextAptNum": 0, "UnschedStatus": 0, "unschedStatus": "",
        "IsNewPatient": "false", "ProcDescript": ", ".join(proc_codes), "ClinicNum": clinic, "IsHygiene": "false",
        "DateTStamp": entered, "DateTimeArrived": NO_TIME, "DateTimeSeated": NO_TIME, "DateTimeDismissed": NO_TIME,
        "DateTimeAskedToArrive": NO_TIME, "colorOverride": "0,0,0", "AppointmentTypeNum": 0,
        "SecDateTEntry": entered, "Priority": "Normal", "PatternSecondary": "", "ItemOrderPlanned": 0,
    }


def demo_appointments(app) -> list[dict]:
    """The demo day's appointments, on the office's next business day. Held lock."""
    tomorrow = next_business_day(office_now(app).date())
    rows = []
    for apt_num, start, pat_num, proc_nums in demo_data.DEMO_DAY:
        patient = app.store.get("patients", pat_num)
        codes = [app.store.get("procedures", n)["procCode"] for n in proc_nums]
        rows.append(appointment_record(apt_num, pat_num, f"{tomorrow.isoformat()} {start}", patient["ClinicNum"],
                                       "Scheduled", codes, "2025-01-06 09:00:00"))
    return rows


def appointments(app) -> list[dict]:
    """Every appointment on the book, booked and demo, in order of their start. Held lock."""
    rows = app.store.all("appointments") + demo_appointments(app)
    return sorted(rows, key=lambda row: (row["AptDateTime"], row["AptNum"]))


def with_server_time(app, row: dict) -> dict:
    """An answer's row, stamped with the office's time as Open Dental stamps each (21.2+)."""
    return {"serverDateTime": wall_clock(office_now(app)), **row}
