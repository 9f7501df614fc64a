"""The appointment book (CONTRACT.md v2.1, `GET /v1/appointments?date=`): what a day's
schedule holds, answered in the contract's shape.

Dentrix keeps an appointment at a wall-clock time of its clinic (the appointment book's
date and time), so the sandbox stores a booked one that way (`date`, `time`, in the store's
"appointments" table) and answers `starts_at` in UTC through the clinic's time zone: the
demo's own for clinics 2 and 3 (`demo_data.CLINIC_TIME_ZONES`), the database's
(`app.time_zone`, the sandbox's --time-zone) for every other. The day asked for is a day of
the appointment book: each clinic's own local date.

The demo schedule is computed, not stored: every business day (Monday to Friday) from a
clinic's today through its next DEMO_BUSINESS_DAYS business days, by the sandbox's clock,
holds the demo day (`demo_data.DEMO_DAY`). It moves with the clock, so a demo run always has
a tomorrow, whatever day it starts on and wherever a test moves the clock. Its ids name the
day and the slot ("2027021501"): the same appointment keeps its id across restarts.

An appointment's guarantor, treatment plan and planned fees are read when it is listed,
from the patient and the plan its procedures are on (as Dentrix joins them), never copied
at booking.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .demo_data import CLINIC_TIME_ZONES, DEMO_DAY
from .wire import money, timestamp

DEFAULT_TIME_ZONE = "America/New_York"  # demo-main's, whose clinic 1 keeps the database's zone
DEMO_BUSINESS_DAYS = 10  # two working weeks ahead: a demo left running keeps a tomorrow


def time_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ValueError (a clear one) for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as {DEFAULT_TIME_ZONE}") from None


def zone_for(app, clinic_id: str) -> ZoneInfo:
    """The clinic's time zone: its own where the demo names one, else the database's."""
    name = CLINIC_TIME_ZONES.get(clinic_id)
    return ZoneInfo(name) if name else app.time_zone


def clinic_today(app, clinic_id: str) -> date:
    """The clinic's local date by the sandbox's clock."""
    return datetime.fromtimestamp(app.clock.now(), zone_for(app, clinic_id)).date()


def is_business_day(day: date) -> bool:
    return day.weekday() < 5


def last_demo_day(today: date) -> date:
    """The last day of the demo schedule of a clinic whose today is `today`."""
    day, counted = today, 0
    while counted < DEMO_BUSINESS_DAYS:
        day += timedelta(days=1)
        counted += is_business_day(day)
    return day


def demo_appointments(app, day: date) -> list[dict]:
    """The demo day's appointments on `day` (store-shaped records), for each clinic whose
    demo schedule holds that day. Callers hold the store's lock."""
    if not is_business_day(day):
        return []
    records = []
    for slot, (start, patient_id, procedure_ids) in enumerate(DEMO_DAY, 1):
        clinic_id = app.store.patients[patient_id]["clinic_id"]
        today = clinic_today(app, clinic_id)
        if today <= day <= last_demo_day(today):
            records.append({
                "appointment_id": f"{day:%Y%m%d}{slot:02d}",
                "patient_id": patient_id,
                "clinic_id": clinic_id,
                "date": day.isoformat(),
                "time": start,
                "procedure_ids": list(procedure_ids),
            })
    return records


def starts_at(app, record: dict) -> datetime:
    """The appointment's start as a moment: its book's date and time in its clinic's zone."""
    wall_clock = datetime.combine(date.fromisoformat(record["date"]), time.fromisoformat(record["time"]))
    return wall_clock.replace(tzinfo=zone_for(app, record["clinic_id"]))


def to_wire(app, record: dict) -> dict:
    """The contract's shape, joined now with the patient and the plan its procedures are
    on. Callers hold the store's lock."""
    patient = app.store.patients[record["patient_id"]]
    procedures = {
        procedure["procedure_id"]: (plan, procedure)
        for plan in app.store.plans_for(record["patient_id"])
        for procedure in plan["procedures"]
    }
    on_it = [procedures[i] for i in record["procedure_ids"] if i in procedures]
    return {
        "appointment_id": record["appointment_id"],
        "patient_id": record["patient_id"],
        "guarantor_id": patient["guarantor_id"],
        "starts_at": timestamp(starts_at(app, record).timestamp()),
        "clinic_id": record["clinic_id"],
        # Booking takes one plan's procedures (control.read_booking), so the first names it.
        "treatment_plan_id": on_it[0][0]["treatment_plan_id"] if on_it else None,
        "procedure_ids": list(record["procedure_ids"]),
        "planned_fees": money(sum((Decimal(procedure["fee"]) for _, procedure in on_it), Decimal("0"))),
    }


def appointments_on(app, day: date) -> list[dict]:
    """Every appointment on the book on `day`, booked and demo, in the contract's shape, in
    order of their start. Callers hold the store's lock."""
    records = app.store.appointments_on(day.isoformat()) + demo_appointments(app, day)
    answers = [to_wire(app, record) for record in records]
    return sorted(answers, key=lambda answer: (answer["starts_at"], answer["appointment_id"]))
