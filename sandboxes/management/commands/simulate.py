"""Push N demo cases through the *running* system and check what landed in Dentrix.

For each case: a new patient with an accepted plan in the Dentrix sandbox (the surname
picks the CareCredit persona), then `POST /api/v1/cases/` as the location's coordinator,
like a coordinator at the chair would. It then watches the API until every case is in the
final state its persona implies, and checks in the Dentrix sandbox that each approved case
holds exactly one payment agreement and one ledger note with exactly the computed terms.

Two personas end needing attention, as real cases do, through the sandboxes rather than by
writing a state: the front desk already typed an agreement for the guarantor by hand (Dentrix
allows one active agreement per account), or Dentrix refuses the agreement (a one-shot fault
on that guarantor's account). At a shadow-mode location both complete: nothing is written,
and the hand-typed agreement is what the shadow comparison reads.
"""

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
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
    "agreement_on_file": ("", "needs_attention"),
    "agreement_refused": ("", "needs_attention"),
}
MIX = ["approved"] * 5 + ["partial", "pending", "declined", "referred", "never_decided", "agreement_on_file", "agreement_refused"]
# Personas that stop for a person because of what Dentrix holds or says: not in shadow mode.
WRITE_PROBLEMS = {"agreement_on_file", "agreement_refused"}
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
        expected_end = {}  # case id → the state its persona implies at this location
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
            self._arrange(persona, site, dentrix, patient)  # before the case starts: its steps run at once
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
            expected_end[case["id"]] = self._expected(persona, site)
            self._progress("started", i + 1, cases)
        self.stdout.write("")

        final = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(final) < len(started):
            for case_id, persona in started:
                if case_id in final:
                    continue
                case = api.get(f"{base}/api/v1/cases/{case_id}/", timeout=10).json()
                expected = expected_end[case_id]
                if case["state"] == expected or case["state"] in ("needs_attention", "cancelled", "expired") or (
                    case["state"] in ("completed", "declined") and case["state"] != expected
                ):
                    final[case_id] = (persona, case)
            self._progress("settled", len(final), len(started))
            if len(final) < len(started):
                time.sleep(1)
        self.stdout.write("")
        self._summary(started, final, expected_end, api, dentrix, site, base)

    @staticmethod
    def _expected(persona: str, site) -> str:
        if persona in WRITE_PROBLEMS and site.mode == Location.Mode.SHADOW:
            return "completed"  # shadow mode writes nothing, so nothing is refused
        return PERSONAS[persona][1]

    def _arrange(self, persona, site, dentrix, patient):
        """What Dentrix holds or will say for the personas that end needing attention."""
        account = patient["guarantor_id"]
        if persona == "agreement_on_file":
            # The front desk typed an agreement by hand (no Chairside marker), still active.
            agreed = datetime.now(UTC).date() - timedelta(days=1)
            self._post(dentrix, f"{site.pms_base_url}/v1/accounts/{account}/payment-agreements", {
                "agreement_date": agreed.isoformat(), "interval": "monthly", "total_agreed_amount": "600.00",
                "down_payment": "0.00", "payment_amount": "50.00", "number_of_payments": 12,
                "first_payment_due": (agreed + timedelta(days=30)).isoformat(), "annual_finance_charge_pct": "0.00",
                "note": "Entered at the front desk",
            })
        elif persona == "agreement_refused":
            self._post(dentrix, f"{site.pms_base_url}/_sandbox/faults", {
                "method": "POST", "path_prefix": f"/v1/accounts/{account}/payment-agreements", "mode": "error",
                "status": 422, "count": 1,
            })

    def _summary(self, started, final, expected_end, api, dentrix, site, base):
        by_state, wrong, times, attention = {}, [], [], []
        verified = 0
        for case_id, persona in started:
            if case_id not in final:
                case = api.get(f"{base}/api/v1/cases/{case_id}/", timeout=10).json()
                wrong.append(f"{case['reference']} ({persona}) still {case['state']}")
                by_state[case["state"]] = by_state.get(case["state"], 0) + 1
                continue
            persona, case = final[case_id]
            by_state[case["state"]] = by_state.get(case["state"], 0) + 1
            if case["state"] == "needs_attention" and case["state"] == expected_end[case_id]:
                attention.append(f"{case['reference']} ({persona}): {case['state_reason']}")
            if case["state"] != expected_end[case_id]:
                wrong.append(f"{case['reference']} ({persona}) ended {case['state']}: {case['state_reason']}")
            if case["state"] == "completed":
                shadow = site.mode == Location.Mode.SHADOW
                problem = (self._nothing_written if shadow else self._verify_in_dentrix)(dentrix, site, case)
                if problem:
                    wrong.append(f"{case['reference']}: {problem}")
                else:
                    verified += 1
                # In shadow mode nothing is written: the arrangement is done when computed.
                times.append(_seconds(case["captured_at"], case["completed_at" if shadow else "arrangement_written_at"]))
        self.stdout.write("Final states:")
        for state, count in sorted(by_state.items()):
            self.stdout.write(f"  {state:<20} {count}")
        if times:
            p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 else times[0]
            self.stdout.write(
                f"Time to arrangement (capture → agreement written), {len(times)} cases: "
                f"median {statistics.median(times):.2f} s, p95 {p95:.2f} s"
            )
        if attention:
            self.stdout.write("Needs attention, as their personas imply (the console's Needs attention list):\n  " + "\n  ".join(attention))
        if site.mode == Location.Mode.SHADOW:
            self.stdout.write(f"Verified in the Dentrix sandbox: {verified} completed cases (shadow mode) with no agreement and no ledger note of Chairside's.")
        else:
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
    def _nothing_written(dentrix, site, case) -> str:
        marker = marker_for(case["reference"])
        agreements = dentrix.get(f"{site.pms_base_url}/v1/accounts/{case['guarantor_id']}/payment-agreements", timeout=10).json()
        notes = dentrix.get(f"{site.pms_base_url}/v1/patients/{case['patient_id']}/ledger-notes", timeout=10).json()
        written = [a for a in agreements if marker in a["note"]] + [n for n in notes if marker in n["text"]]
        return f"shadow mode wrote {len(written)} records to Dentrix" if written else ""

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
