"""The demo office every Open Dental sandbox starts with (and returns to on reset).

The same people and treatment as the Dentrix sandbox's demo patients (one per CareCredit
persona, chosen by the surname's prefix), with Open Dental's own numbers:

    PatNum  Name                 persona              TreatPlanNum  total    ClinicNum
    101     Ava Thompson         approved             501           1680.00  1
    102     Ben Decline-Parker   declined             502           4150.00  1
    103     Carla Pending-Lee    pending → approved   503           2710.00  1
    104     Dev Partial-Nguyen   approved for 60 %    504           2685.00  1
    105     Eli Refer-Garcia     referred             505           1365.00  1
    106     Fay Expire-Brown     never decided        506            680.00  1
    107     Gus Thompson         a minor, Guarantor 101  507         705.00  1
    108     Hal Lindqvist        approved             508           1290.00  2
    109     Ivy Moreau           approved             509           1780.00  0 (no clinic)
    110     Jay Cardholder-Reyes pre-screen: a card   510           1560.00  1
    111     Kim Nomatch-Olsen    pre-screen: no match 511           2150.00  1

Each plan is the patient's Active treatment plan; its procedures are treatment planned
(ProcStatus TP), ProcNums from 901 in this order. New records take numbers from 1001
(patients), 5001 (treatment plans), 9001 (procedures), 7001 (payment plans), 8001
(commlogs), 2001 (appointments). Everything is synthetic: 555-01xx phones, example.com emails.

The demo schedule (`DEMO_DAY`): one Scheduled appointment per demo patient, AptNum 201–211,
always on the office's next business day by the sandbox's clock (`schedule`), so a demo run
always has a tomorrow. Each holds the patient's treatment-planned procedures (their AptNum
is the appointment's: in Open Dental a procedure is on one appointment), but Fay's holds
only her panoramic film and cleaning (918–919, 255.00: below the pre-screen's $500).
"""

from __future__ import annotations

_ADDRESSES = {
    101: ("101 Maple Avenue", "62701"), 102: ("202 Oak Street", "62702"), 103: ("303 Pine Road", "62703"),
    104: ("404 Birch Lane", "62704"), 105: ("505 Cedar Court", "62705"), 106: ("606 Elm Way", "62706"),
    107: ("101 Maple Avenue", "62701"), 108: ("808 Walnut Street", "62707"), 109: ("909 Aspen Drive", "62709"),
    110: ("1010 Spruce Street", "62701"), 111: ("1111 Willow Bend", "62702"),
}

# PatNum, FName, LName, Birthdate, phone, email, Guarantor, ClinicNum, Gender, Position
PEOPLE = (
    (101, "Ava", "Thompson", "1984-03-14", "(312)555-0101", "ava.thompson@example.com", 101, 1, "Female", "Married"),
    (102, "Ben", "Decline-Parker", "1979-11-02", "(312)555-0102", "ben.parker@example.com", 102, 1, "Male", "Single"),
    (103, "Carla", "Pending-Lee", "1991-07-23", "(312)555-0103", "carla.lee@example.com", 103, 1, "Female", "Single"),
    (104, "Dev", "Partial-Nguyen", "1988-01-30", "(312)555-0104", "dev.nguyen@example.com", 104, 1, "Male", "Married"),
    (105, "Eli", "Refer-Garcia", "1975-05-09", "(312)555-0105", "eli.garcia@example.com", 105, 1, "Male", "Married"),
    (106, "Fay", "Expire-Brown", "1996-12-17", "(312)555-0106", "fay.brown@example.com", 106, 1, "Female", "Single"),
    (107, "Gus", "Thompson", "2014-06-02", "(312)555-0101", "ava.thompson@example.com", 101, 1, "Male", "Child"),
    (108, "Hal", "Lindqvist", "1969-08-21", "(312)555-0108", "hal.lindqvist@example.com", 108, 2, "Male", "Married"),
    (109, "Ivy", "Moreau", "1993-02-08", "(312)555-0109", "ivy.moreau@example.com", 109, 0, "Female", "Single"),
    # The pre-screen's personas (CareCredit's Quickscreen decides by the surname's prefix).
    (110, "Jay", "Cardholder-Reyes", "1982-09-12", "(312)555-0110", "jay.reyes@example.com", 110, 1, "Male", "Married"),
    (111, "Kim", "Nomatch-Olsen", "1987-04-25", "(312)555-0111", "kim.olsen@example.com", 111, 1, "Female", "Single"),
)

# TreatPlanNum, PatNum, procedures (procCode, ToothNum, Surf, ProcFee)
PLANS = (
    (501, 101, (("D2740", "14", "", "1250.00"), ("D2950", "14", "", "310.00"), ("D1110", "", "", "120.00"))),
    (502, 102, (("D6010", "19", "", "2100.00"), ("D6057", "19", "", "650.00"), ("D6065", "19", "", "1400.00"))),
    (503, 103, (("D3330", "3", "", "1150.00"), ("D2950", "3", "", "310.00"), ("D2740", "3", "", "1250.00"))),
    (504, 104, (("D2740", "3", "", "1250.00"), ("D2740", "30", "", "1250.00"), ("D2391", "19", "O", "185.00"))),
    (505, 105, (("D7240", "32", "", "520.00"), ("D7240", "17", "", "520.00"), ("D9239", "", "", "325.00"))),
    (506, 106, (("D2391", "30", "O", "185.00"), ("D2392", "19", "MO", "240.00"), ("D0330", "", "", "135.00"),
                ("D1110", "", "", "120.00"))),
    (507, 107, (("D1120", "", "", "85.00"), ("D1351", "3", "", "55.00"), ("D1351", "14", "", "55.00"),
                ("D1351", "19", "", "55.00"), ("D1351", "30", "", "55.00"), ("D2391", "K", "O", "160.00"),
                ("D2930", "T", "", "240.00"))),
    (508, 108, (("D2750", "30", "", "980.00"), ("D2950", "30", "", "310.00"))),
    (509, 109, (("D4341", "", "", "265.00"), ("D4341", "", "", "265.00"), ("D2740", "8", "", "1250.00"))),
    (510, 110, (("D2740", "19", "", "1250.00"), ("D2950", "19", "", "310.00"))),
    (511, 111, (("D3310", "8", "", "900.00"), ("D2740", "8", "", "1250.00"))),
)

# The demo day: AptNum, the office's wall-clock time, PatNum, the ProcNums booked on it.
DEMO_DAY = (
    (201, "09:00:00", 101, (901, 902, 903)),
    (202, "09:30:00", 102, (904, 905, 906)),
    (203, "10:00:00", 103, (907, 908, 909)),
    (204, "11:00:00", 104, (910, 911, 912)),
    (205, "11:30:00", 110, (932, 933)),
    (206, "13:00:00", 111, (934, 935)),
    (207, "14:00:00", 105, (913, 914, 915)),
    (208, "15:00:00", 107, (920, 921, 922, 923, 924, 925, 926)),
    (209, "16:00:00", 106, (918, 919)),
    (210, "10:00:00", 108, (927, 928)),
    (211, "10:30:00", 109, (929, 930, 931)),
)


def address(pat_num: int) -> tuple[str, str]:
    return _ADDRESSES[pat_num]


# The office's definitions (apidefinitions.html): Category 1 AdjTypes (ItemValue "+" or "-"),
# 10 PaymentTypes, 27 commlog types. `ledger` types payments and adjustments by them.
ADJ_TYPES, PAYMENT_TYPES = 1, 10
CATEGORY_NAMES = {ADJ_TYPES: "AdjTypes", PAYMENT_TYPES: "PaymentTypes", 27: "CommLogTypes"}

# The demo office's definitions: Open Dental's stock types (DefNums as in its examples), the
# three a CareCredit office adds, and a hidden (retired) one of each kind.
DEFINITIONS: tuple[tuple[int, int, str, str, bool], ...] = (
    # (DefNum, Category, ItemName, ItemValue, isHidden)
    (1, ADJ_TYPES, "Misc Neg Adjustment", "-", False),
    (2, ADJ_TYPES, "Misc Pos Adjustment", "+", False),
    (8, ADJ_TYPES, "Professional Discount", "-", False),
    (9, ADJ_TYPES, "Cash Discount", "-", False),
    (293, ADJ_TYPES, "Sales Tax", "+", False),
    (470, ADJ_TYPES, "CareCredit Merchant Fee", "-", False),
    (471, ADJ_TYPES, "CareCredit Refund", "+", False),
    (472, ADJ_TYPES, "Senior Discount", "-", True),
    (69, PAYMENT_TYPES, "Check", "", False),
    (70, PAYMENT_TYPES, "Cash", "", False),
    (71, PAYMENT_TYPES, "Credit Card", "", False),
    (480, PAYMENT_TYPES, "CareCredit Payment", "", False),
    (481, PAYMENT_TYPES, "Lending Club", "", True),
    (235, 27, "ApptRelated", "", False),
    (236, 27, "Insurance", "", False),
    (237, 27, "Financial", "", False),
    (238, 27, "Recall", "", False),
    (239, 27, "Misc", "", False),
)


def definition_records() -> list[dict]:
    return [
        {"DefNum": num, "ItemName": name, "ItemValue": value, "Category": category,
         "category": CATEGORY_NAMES[category], "isHidden": "true" if hidden else "false"}
        for num, category, name, value, hidden in DEFINITIONS
    ]
