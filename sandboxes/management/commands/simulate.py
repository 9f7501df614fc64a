"""Push N demo cases through the *running* system and check what landed in Dentrix.

For each case: a new patient with an accepted plan in the Dentrix sandbox (the surname
picks the CareCredit persona), then `POST /api/v1/cases/` as the location's coordinator,
like a coordinator at the chair would. It then watches the API until every case is in the
final state its persona implies, and checks in the Dentrix sandbox that each approved case
holds exactly one payment agreement and one ledger note with exactly the computed terms.
"""

import random
import statistics
import sys
import time
from decimal import Decimal

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from financing.markers import marker_for
from financing.models import Location, Membership

# persona → (surname prefix, the state the case should settle in)
PERSONAS = {
    "approved": ("", "completed"),
    "partial": ("Partial-", "completed"),
    "pending": ("Pending-", "completed"),
    "declined": ("Decline-", "declined"),
    "referred": ("Refer-", "awaiting_decision"),
    "never_decided": ("Expire-", "application_sent"),
}
MIX = ["approved"] * 5 + ["partial", "pending", "declined", "referred", "never_decided"]
FIRST_NAMES = ["Ava", "Ben", "Cora", "Dan", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kim", "Leo"]
SURNAMES = ["Rivera", "Chen", "Okafor", "Novak", "Silva", "Haddad", "Kowalski", "Brennan", "Sato", "Moreau"]
# Every plan has one major procedure, so even a 60% partial approval stays above the
# $200 deferred-interest minimum: the simulation exercises the flow, not the policy.
MAJOR_PROCEDURES = [
    {"code": "D2740", "tooth": "14", "surface": "", "fee": "1250.00"},
    {"code": "D6010", "tooth": "19", "surface": "", "fee": "2100.00"},
    {"code": "D3330", "tooth": "3", "surface": "", "fee": "1150.00"},
    {"code": "D2750", "tooth": "30", "surface": "", "fee": "980.00"},
]
MINOR_PROCEDURES = [
    {"code": "D2950", "tooth": "14", "surface": "", "fee": "310.00"},
    {"code": "D2391", "tooth": "30", "surface": "O", "fee": "185.00"},
    {"code": "D4341", "tooth": "", "surface": "", "fee": "265.00"},
    {"code": "D0220", "tooth": "", "surface": "", "fee": "35.00"},
]


def web_url(explicit: str | None = None) -> str:
    """Where to reach Chairside: --url, else what a running `make run` wrote (it knows its
    CHAIRSIDE_PORT; this terminal may not), else CHAIRSIDE_PUBLIC_URL."""
    if explicit:
        return explicit.rstrip("/")
    try:
        written = settings.WEB_URL_FILE.read_text().strip()
    except OSError:
        written = ""
    return (written or settings.CHAIRSIDE_PUBLIC_URL).rstrip("/")


class Command(BaseCommand):
    help = "Push N demo cases through the running system and summarise the outcome."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=20)
        parser.add_argument("--location", default="demo-main")
        parser.add_argument("--timeout", type=float, default=300.0, help="Seconds to wait for the cases to settle.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--url", default=None,
            help="Chairside's web server (default: where a running `make run` says it listens, else CHAIRSIDE_PUBLIC_URL).",
        )

    def handle(self, *args, cases, location, timeout, seed, url=None, **options):
        rng = random.Random(seed)
        site = Location.objects.filter(code=location).first()
        if site is None:
            raise CommandError(f"No location {location!r}: run `python manage.py seed_demo` first.")
        api = requests.Session()
        api.headers["Authorization"] = f"Token {self._token(site)}"
        dentrix = requests.Session()
        dentrix.headers["X-API-Key"] = site.pms_api_key
        base = web_url(url)

        started = []  # (case id, persona)
        for i in range(cases):
            persona = MIX[i % len(MIX)]
            procedures = [rng.choice(MAJOR_PROCEDURES)] + rng.sample(MINOR_PROCEDURES, rng.randint(0, 2))
            total = sum(Decimal(p["fee"]) for p in procedures)
            patient = self._post(
                dentrix,
                f"{site.pms_base_url}/_sandbox/patients",
                {
                    "first_name": rng.choice(FIRST_NAMES),
                    "last_name": PERSONAS[persona][0] + rng.choice(SURNAMES),
                    "birth_date": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                    "phone": f"+1555555{rng.randint(1000, 9999)}",
                    "email": f"patient{rng.randint(1000, 99999)}@example.com",
                    "address": {"line1": f"{rng.randint(1, 999)} Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
                    "procedures": procedures,
                    # A patient of the location's own clinic: another clinic's would be refused.
                    **({"clinic_id": site.clinic_ids[0]} if site.clinic_ids else {}),
                },
            )
            promotion = "reduced_apr_36" if persona == "approved" and total >= 1000 and i % 2 else "deferred_12"
            case = self._post(
                api,
                f"{base}/api/v1/cases/",
                {
                    "location": site.code,
                    "patient_id": patient["patient_id"],
                    "treatment_plan_id": patient["treatment_plan_id"],
                    "down_payment": "0.00",
                    "promotion": promotion,
                },
            )
            started.append((case["id"], persona))
            self._progress("started", i + 1, cases)
        self.stdout.write("")

        final = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(final) < len(started):
            for case_id, persona in started:
                if case_id in final:
                    continue
                case = api.get(f"{base}/api/v1/cases/{case_id}/", timeout=10).json()
                expected = PERSONAS[persona][1]
                if case["state"] == expected or case["state"] in ("needs_attention", "cancelled", "expired") or (
                    case["state"] in ("completed", "declined") and case["state"] != expected
                ):
                    final[case_id] = (persona, case)
            self._progress("settled", len(final), len(started))
            if len(final) < len(started):
                time.sleep(1)
        self.stdout.write("")
        self._summary(started, final, api, dentrix, site, base)

    def _summary(self, started, final, api, dentrix, site, base):
        by_state, wrong, times = {}, [], []
        verified = 0
        for case_id, persona in started:
            if case_id not in final:
                case = api.get(f"{base}/api/v1/cases/{case_id}/", timeout=10).json()
                wrong.append(f"{case['reference']} ({persona}) still {case['state']}")
                by_state[case["state"]] = by_state.get(case["state"], 0) + 1
                continue
            persona, case = final[case_id]
            by_state[case["state"]] = by_state.get(case["state"], 0) + 1
            if case["state"] != PERSONAS[persona][1]:
                wrong.append(f"{case['reference']} ({persona}) ended {case['state']}: {case['state_reason']}")
            if case["state"] == "completed":
                problem = self._verify_in_dentrix(dentrix, site, case)
                if problem:
                    wrong.append(f"{case['reference']}: {problem}")
                else:
                    verified += 1
                times.append(_seconds(case["captured_at"], case["arrangement_written_at"]))
        self.stdout.write("Final states:")
        for state, count in sorted(by_state.items()):
            self.stdout.write(f"  {state:<20} {count}")
        if times:
            p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 else times[0]
            self.stdout.write(
                f"Time to arrangement (capture → agreement written), {len(times)} cases: "
                f"median {statistics.median(times):.2f} s, p95 {p95:.2f} s"
            )
        self.stdout.write(f"Verified in the Dentrix sandbox: {verified} completed cases with exactly one agreement and one ledger note, exact terms.")
        if wrong:
            self.stdout.write(self.style.ERROR("Not as expected:\n  " + "\n  ".join(wrong)))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS(f"All {len(started)} cases settled as their personas imply."))

    @staticmethod
    def _verify_in_dentrix(dentrix, site, case) -> str:
        marker = marker_for(case["reference"])
        agreements = dentrix.get(f"{site.pms_base_url}/v1/accounts/{case['guarantor_id']}/payment-agreements", timeout=10).json()
        ours = [a for a in agreements if marker in a["note"]]
        notes = dentrix.get(f"{site.pms_base_url}/v1/patients/{case['patient_id']}/ledger-notes", timeout=10).json()
        our_notes = [n for n in notes if marker in n["text"]]
        if len(ours) != 1 or len(our_notes) != 1:
            return f"{len(ours)} agreements and {len(our_notes)} ledger notes carry its marker (expected 1 and 1)"
        a, terms = ours[0], case["arrangement"]
        expected = {
            "payment_amount": terms["recurring_amount"],
            "number_of_payments": terms["number_of_payments"],
            "down_payment": terms["down_payment"],
            "first_payment_due": terms["first_payment_date"],
            "annual_finance_charge_pct": terms["apr"],
            "total_agreed_amount": case["plan_total"],
        }
        diffs = [f"{k}: Dentrix {a[k]} vs computed {v}" for k, v in expected.items() if str(a[k]) != str(v)]
        return "; ".join(diffs)

    @staticmethod
    def _token(site) -> str:
        membership = Membership.objects.filter(location=site, role=Membership.Role.COORDINATOR).select_related("user").first()
        if membership is None:
            raise CommandError(f"Location {site.code} has no coordinator to act as.")
        return Token.objects.get_or_create(user=membership.user)[0].key

    @staticmethod
    def _post(session, url, payload) -> dict:
        try:
            response = session.post(url, json=payload, timeout=15)
        except requests.ConnectionError:
            raise CommandError(f"Cannot reach {url}: is `make run` running?")
        if response.status_code not in (200, 201):
            raise CommandError(f"POST {url} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def _progress(self, label, done, total):
        width = 30
        filled = int(width * done / total) if total else width
        self.stdout.write(f"\r  {label:<8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()


def _seconds(start: str, end: str) -> float:
    from django.utils.dateparse import parse_datetime

    return (parse_datetime(end) - parse_datetime(start)).total_seconds()
