"""What the demo history is made of: patients' names, dental procedures and their fees, why
people cancel, what staff get wrong when they type an agreement by hand.

Synthetic throughout: names are common first names with an initial, ids are in ranges the
Dentrix sandbox never hands out (it counts patients from 2001, plans from 6001).
"""

from decimal import Decimal

D = Decimal

FIRST_NAMES = [
    "Ava", "Ben", "Cora", "Dan", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kim", "Leo", "Mia", "Noah", "Olga",
    "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe", "Amir", "Bea", "Cruz", "Dina",
]
INITIALS = "ABCDEFGHJKLMNOPRSTVWY"

# Patients, guarantors and plans of the history: far from the sandbox's own id ranges.
FIRST_PATIENT_ID = 30001
FIRST_GUARANTOR_ID = 39001  # a parent paying for a minor's plan
FIRST_PLAN_ID = 50001

# CDT code, what it is, usual fee at these practices, whether it takes a tooth.
MAJOR = [
    ("D2740", "crown, porcelain/ceramic", D("1250.00"), True),
    ("D2750", "crown, porcelain fused to metal", D("1150.00"), True),
    ("D6010", "implant body", D("2100.00"), True),
    ("D6065", "implant crown, porcelain", D("1650.00"), True),
    ("D3330", "root canal, molar", D("1150.00"), True),
    ("D3310", "root canal, anterior", D("850.00"), True),
    ("D5110", "complete denture, upper", D("1900.00"), False),
    ("D5213", "partial denture, upper, cast metal", D("1750.00"), False),
    ("D8080", "comprehensive orthodontics, adolescent", D("5800.00"), False),
    ("D7240", "removal of impacted tooth, bony", D("495.00"), True),
]
MINOR = [
    ("D2950", "core buildup", D("310.00"), True),
    ("D2391", "resin composite, one surface, posterior", D("185.00"), True),
    ("D4341", "scaling and root planing, per quadrant", D("265.00"), False),
    ("D9944", "occlusal guard", D("550.00"), False),
    ("D0220", "periapical radiograph", D("35.00"), False),
    ("D7953", "bone graft for ridge preservation", D("425.00"), True),
]
TEETH = ["3", "14", "19", "30", "8", "9", "12", "21"]

CANCEL_REASONS = [
    "Patient decided to pay with their HSA card instead",
    "Treatment postponed: the patient is moving out of state",
    "Patient chose the practice's in-house payment plan",
    "Plan re-presented in two phases; a new case follows for phase one",
    "Insurance pre-authorisation came back higher than expected: nothing left to finance",
    "Patient asked to think it over with their family",
]

# (field, why, how the new value follows from the old): what billing fixes after writing.
CORRECTIONS = [
    ("first_payment_date", "Patient asked to move the first payment to the 15th, after payday", "next_15th"),
    ("recurring_amount", "Front desk rounded the monthly payment up to whole dollars in Dentrix", "whole_dollars"),
    ("down_payment", "Patient paid $100.00 more at the front desk on the day", "plus_100"),
    ("pms_arrangement_id", "Agreement re-entered in Dentrix after the guarantor changed", "new_id"),
]

# What staff typed differently when they entered the agreement by hand (shadow mode).
HAND_ENTRY_SLIPS = ["first_payment_due", "payment_amount", "number_of_payments", "down_payment"]
