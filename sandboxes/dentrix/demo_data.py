"""The demo patients every Dentrix sandbox starts with (and returns to on reset).

Ids are fixed so a seeding script and the CareCredit sandbox's personas can rely on
them. The CareCredit sandbox decides from the surname's case-insensitive prefix
(DECLINE…, PENDING…, PARTIAL…, REFER…, EXPIRE…; anyone else is approved), so there is
one patient per lender persona. Everything here is synthetic: 555-01xx phone numbers
are reserved for fiction and example.com is reserved for documentation.

Plan totals (checked by the tests) are chosen so both promotion kinds apply to most
patients: deferred interest from $200, reduced APR from $1,000.

    1001 Ava Thompson        approved            plan 5001  1680.00
    1002 Ben Decline-Parker  declined            plan 5002  4150.00
    1003 Carla Pending-Lee   pending → approved  plan 5003  2710.00
    1004 Dev Partial-Nguyen  approved for 60 %   plan 5004  2685.00
    1005 Eli Refer-Garcia    referred            plan 5005  1365.00
    1006 Fay Expire-Brown    never decided       plan 5006   680.00
    1007 Gus Thompson        minor, guarantor 1001, plan 5007  705.00
    1008 Hal Lindqvist       approved            plan 5008  1290.00   clinic 2
    1009 Ivy Moreau          approved            plan 5009  1780.00   clinic 3
    1010 Jay Cardholder-Reyes   already a cardholder (pre-screen)  plan 5010  1560.00
    1011 Kim Nomatch-Olsen      no pre-screen match                plan 5011  2150.00

1010 and 1011 came with the pre-screen (contract v2.1): CareCredit's Quickscreen finds an
existing card for a CARDHOLDER… surname and no match for a NOMATCH… one; its application
personas treat both like anyone else (approved).

The sandbox is one multi-clinic practice database (Dentrix Enterprise): 1001–1007, 1010 and
1011 belong to clinic 1, 1008 to clinic 2, 1009 to clinic 3; `seed_demo` binds demo-main,
demo-north and demo-south to them. New sandbox patients go to clinic 1 unless told otherwise.

The demo day (`DEMO_DAY`, at the end): the appointments every business day of the demo
schedule holds (`schedule.demo_appointments` puts them on the days; CONTRACT.md "Demo
data"), at the clinic's wall-clock times, each with its patient's planned procedures:
clinic 1 has 1001–1005, 1010 and 1011 over the pre-screen's $500 threshold, the minor 1007
(705.00) and 1006 below it (255.00: her panoramic image and cleaning); clinics 2 and 3 have
1008 and 1009.
"""

from __future__ import annotations

DEMO_PATIENTS: tuple[dict, ...] = (
    {
        "patient_id": "1001",
        "guarantor_id": "1001",
        "first_name": "Ava",
        "last_name": "Thompson",
        "birth_date": "1984-03-14",
        "phone": "312-555-0101",
        "email": "ava.thompson@example.com",
        "address": {"line1": "101 Maple Avenue", "city": "Springfield", "state": "IL", "zip": "62701"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1002",
        "guarantor_id": "1002",
        "first_name": "Ben",
        "last_name": "Decline-Parker",
        "birth_date": "1979-11-02",
        "phone": "312-555-0102",
        "email": "ben.parker@example.com",
        "address": {"line1": "202 Oak Street", "city": "Springfield", "state": "IL", "zip": "62702"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1003",
        "guarantor_id": "1003",
        "first_name": "Carla",
        "last_name": "Pending-Lee",
        "birth_date": "1991-07-23",
        "phone": "312-555-0103",
        "email": "carla.lee@example.com",
        "address": {"line1": "303 Pine Road", "city": "Springfield", "state": "IL", "zip": "62703"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1004",
        "guarantor_id": "1004",
        "first_name": "Dev",
        "last_name": "Partial-Nguyen",
        "birth_date": "1988-01-30",
        "phone": "312-555-0104",
        "email": "dev.nguyen@example.com",
        "address": {"line1": "404 Birch Lane", "city": "Springfield", "state": "IL", "zip": "62704"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1005",
        "guarantor_id": "1005",
        "first_name": "Eli",
        "last_name": "Refer-Garcia",
        "birth_date": "1975-05-09",
        "phone": "312-555-0105",
        "email": "eli.garcia@example.com",
        "address": {"line1": "505 Cedar Court", "city": "Springfield", "state": "IL", "zip": "62705"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1006",
        "guarantor_id": "1006",
        "first_name": "Fay",
        "last_name": "Expire-Brown",
        "birth_date": "1996-12-17",
        "phone": "312-555-0106",
        "email": "fay.brown@example.com",
        "address": {"line1": "606 Elm Way", "city": "Springfield", "state": "IL", "zip": "62706"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        # A minor: his mother Ava (1001) holds the account, so agreements for his plan
        # are written to account 1001.
        "patient_id": "1007",
        "guarantor_id": "1001",
        "first_name": "Gus",
        "last_name": "Thompson",
        "birth_date": "2014-06-02",
        "phone": "312-555-0101",
        "email": "ava.thompson@example.com",
        "address": {"line1": "101 Maple Avenue", "city": "Springfield", "state": "IL", "zip": "62701"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        # The database's other clinics each have a patient: reachable from their own
        # clinic's location only.
        "patient_id": "1008",
        "guarantor_id": "1008",
        "first_name": "Hal",
        "last_name": "Lindqvist",
        "birth_date": "1969-08-21",
        "phone": "312-555-0108",
        "email": "hal.lindqvist@example.com",
        "address": {"line1": "808 Walnut Street", "city": "Springfield", "state": "IL", "zip": "62707"},
        "status": "patient",
        "clinic_id": "2",
    },
    {
        "patient_id": "1009",
        "guarantor_id": "1009",
        "first_name": "Ivy",
        "last_name": "Moreau",
        "birth_date": "1993-02-08",
        "phone": "312-555-0109",
        "email": "ivy.moreau@example.com",
        "address": {"line1": "909 Aspen Drive", "city": "Springfield", "state": "IL", "zip": "62709"},
        "status": "patient",
        "clinic_id": "3",
    },
    {
        # Pre-screen personas (CareCredit's Quickscreen decides by the surname's prefix).
        "patient_id": "1010",
        "guarantor_id": "1010",
        "first_name": "Jay",
        "last_name": "Cardholder-Reyes",
        "birth_date": "1982-09-12",
        "phone": "312-555-0110",
        "email": "jay.reyes@example.com",
        "address": {"line1": "1010 Spruce Street", "city": "Springfield", "state": "IL", "zip": "62701"},
        "status": "patient",
        "clinic_id": "1",
    },
    {
        "patient_id": "1011",
        "guarantor_id": "1011",
        "first_name": "Kim",
        "last_name": "Nomatch-Olsen",
        "birth_date": "1987-04-25",
        "phone": "312-555-0111",
        "email": "kim.olsen@example.com",
        "address": {"line1": "1111 Willow Bend", "city": "Springfield", "state": "IL", "zip": "62702"},
        "status": "patient",
        "clinic_id": "1",
    },
)


def _proc(code: str, tooth: str, surface: str, fee: str) -> dict:
    return {"code": code, "tooth": tooth, "surface": surface, "fee": fee}


# Each patient's one accepted plan: (plan id, patient id, procedures).
DEMO_PLANS: tuple[tuple[str, str, tuple[dict, ...]], ...] = (
    (
        "5001",
        "1001",
        (
            _proc("D2740", "14", "", "1250.00"),  # porcelain/ceramic crown
            _proc("D2950", "14", "", "310.00"),  # core buildup
            _proc("D1110", "", "", "120.00"),  # adult prophylaxis
        ),
    ),
    (
        "5002",
        "1002",
        (
            _proc("D6010", "19", "", "2100.00"),  # implant body
            _proc("D6057", "19", "", "650.00"),  # custom abutment
            _proc("D6065", "19", "", "1400.00"),  # implant-supported crown
        ),
    ),
    (
        "5003",
        "1003",
        (
            _proc("D3330", "3", "", "1150.00"),  # molar root canal
            _proc("D2950", "3", "", "310.00"),  # core buildup
            _proc("D2740", "3", "", "1250.00"),  # crown
        ),
    ),
    (
        "5004",
        "1004",
        (
            _proc("D2740", "3", "", "1250.00"),  # crown
            _proc("D2740", "30", "", "1250.00"),  # crown
            _proc("D2391", "19", "O", "185.00"),  # one-surface posterior composite
        ),
    ),
    (
        "5005",
        "1005",
        (
            _proc("D7240", "32", "", "520.00"),  # impacted tooth, completely bony
            _proc("D7240", "17", "", "520.00"),  # impacted tooth, completely bony
            _proc("D9239", "", "", "325.00"),  # IV moderate sedation, first 15 min
        ),
    ),
    (
        "5006",
        "1006",
        (
            _proc("D2391", "30", "O", "185.00"),  # one-surface posterior composite
            _proc("D2392", "19", "MO", "240.00"),  # two-surface posterior composite
            _proc("D0330", "", "", "135.00"),  # panoramic image
            _proc("D1110", "", "", "120.00"),  # adult prophylaxis
        ),
    ),
    (
        "5007",
        "1007",
        (
            _proc("D1120", "", "", "85.00"),  # child prophylaxis
            _proc("D1351", "3", "", "55.00"),  # sealant
            _proc("D1351", "14", "", "55.00"),  # sealant
            _proc("D1351", "19", "", "55.00"),  # sealant
            _proc("D1351", "30", "", "55.00"),  # sealant
            _proc("D2391", "K", "O", "160.00"),  # composite on a primary molar
            _proc("D2930", "T", "", "240.00"),  # stainless steel crown, primary tooth
        ),
    ),
    (
        "5008",
        "1008",
        (
            _proc("D2750", "30", "", "980.00"),  # porcelain fused to high noble crown
            _proc("D2950", "30", "", "310.00"),  # core buildup
        ),
    ),
    (
        "5009",
        "1009",
        (
            _proc("D4341", "", "", "265.00"),  # scaling and root planing, per quadrant
            _proc("D4341", "", "", "265.00"),
            _proc("D2740", "8", "", "1250.00"),  # crown
        ),
    ),
    (
        "5010",
        "1010",
        (
            _proc("D2740", "19", "", "1250.00"),  # crown
            _proc("D2950", "19", "", "310.00"),  # core buildup
        ),
    ),
    (
        "5011",
        "1011",
        (
            _proc("D3310", "8", "", "900.00"),  # anterior root canal
            _proc("D2740", "8", "", "1250.00"),  # crown
        ),
    ),
)

# The clinics' time zones where they differ from the database's (the sandbox's --time-zone,
# which clinic 1 keeps): the demo locations' zones (seed_demo), so each location's "tomorrow"
# is its clinic's.
CLINIC_TIME_ZONES: dict[str, str] = {"2": "America/Chicago", "3": "America/Los_Angeles"}

# The demo day: (wall-clock start in the patient's clinic, patient id, procedure ids). Every
# business day of the demo schedule holds it (`schedule.demo_appointments`). Clinic 1's day
# has several patients over the pre-screen's $500 threshold, one per lender persona, a minor
# (1007, on his mother's account) and one below it (1006: her panoramic image and cleaning).
DEMO_DAY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("09:00", "1001", ("9001", "9002", "9003")),
    ("09:30", "1002", ("9004", "9005", "9006")),
    ("10:00", "1003", ("9007", "9008", "9009")),
    ("11:00", "1004", ("9010", "9011", "9012")),
    ("11:30", "1010", ("9032", "9033")),
    ("13:00", "1011", ("9034", "9035")),
    ("14:00", "1005", ("9013", "9014", "9015")),
    ("15:00", "1007", ("9020", "9021", "9022", "9023", "9024", "9025", "9026")),
    ("16:00", "1006", ("9018", "9019")),
    ("10:00", "1008", ("9027", "9028")),
    ("10:30", "1009", ("9029", "9030", "9031")),
)

# The practice's payment and adjustment types (contract v2.2), as its staff named them in
# the product's definitions: the three a CareCredit practice sets up, a few ordinary ones,
# and one retired type of each kind (inactive: the connector refuses it by name). An
# adjustment's sign is the entry's (negative credits the account), not the type's.
DEMO_LEDGER_TYPES: tuple[dict, ...] = tuple(
    {"type_id": str(type_id), "kind": kind, "name": name, "active": active}
    for type_id, (kind, name, active) in enumerate((
        ("payment", "Cash", True),
        ("payment", "Check", True),
        ("payment", "Credit Card", True),
        ("payment", "CareCredit Payment", True),
        ("payment", "Lending Club Payment", False),
        ("adjustment", "Professional Courtesy", True),
        ("adjustment", "Insurance Write-Off", True),
        ("adjustment", "Finance Charge", True),
        ("adjustment", "CareCredit Merchant Fee", True),
        ("adjustment", "CareCredit Refund", True),
        ("adjustment", "Senior Discount", False),
    ), start=1)
)
