"""Push N demo cases through the *running* system and check what landed in each PMS.

Cases are spread round-robin over every live location whose PMS has a simulation plug-in
(`--location CODE` limits it to one). For each case: a new patient with an accepted plan in
the location's PMS sandbox (the surname picks the CareCredit persona), then
`POST /api/v1/cases/` as the location's coordinator, like a coordinator at the chair would.
It then watches the API until every case is in the final state its persona implies, and
checks in the PMS that each completed case holds exactly one arrangement record and one
ledger note with exactly the computed terms, in that product's shape.

What a practice does in its PMS, and what "landed right" means there, is a plug-in per PMS
sandbox (`PRACTICES`: a `Practice` class in `sandboxes/<pkg>/simulation.py`, over HTTP only).
Where the product writes a plan only over posted production (Dentrix Ascend, Eaglesoft), the
approved case waits in `awaiting_production` until the treatment is posted: the simulation
posts it a few seconds after it sees the case waiting, as the front desk would after the visit.

Two personas end needing attention, as real cases do, through the sandboxes rather than by
writing a state: the front desk already typed a record for the account by hand (where the
product allows one per account; where it keeps several, as Dentrix Enterprise does, the case
writes beside it and completes), or the PMS refuses the write (a one-shot fault on that
account). At a shadow-mode location both complete: nothing is written.

At a location that records CareCredit as a payment (docs/money.md), an approved case waits
for its treatment to be posted (the simulation posts it, as above), is charged to CareCredit,
and its payment (net of the fee) and merchant fee (−fee) are posted, with an in-house plan
for the rest of a partial approval where the location carries it; there is no CareCredit
schedule to write, so the two write-problem personas have nothing to stop them and complete.
The run ends with the reconciliation of each such merchant's day (the reconciliation
service, as beat runs it the next morning): purchases, fees, net, and the exceptions.
"""

import logging
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from rest_framework.authtoken.models import Token

from financing import display, partners
from financing.management.commands.run_embedded import DEMO_PRODUCTION_CHECK_SECONDS
from financing.models import FinancedCase, Location, Membership, Recording, ReconciliationItem, effective_template
from financing.services import reconciliation

# pms_kind → the simulation plug-in of its sandbox (imported when a location needs it, so a
# plug-in that is missing or broken fails only for its own kind).
PRACTICES = {
    "dentrix": "sandboxes.dentrix.simulation.Practice",
    "dentrix_enterprise": "sandboxes.dentrix.simulation.Practice",
    "dentrix_ascend": "sandboxes.dentrix.simulation.Practice",
    "eaglesoft": "sandboxes.dentrix.simulation.Practice",
    "opendental": "sandboxes.opendental.simulation.Practice",
}
# How long after a case is seen waiting for posted production the treatment is posted.
POST_DELAY_SECONDS = 3.0

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
# Personas that stop for a person because of what the PMS holds or says: not in shadow mode.
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
SETTLED_ANYWAY = ("needs_attention", "cancelled", "expired")


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


@dataclass
class Site:
    """One location being simulated: its PMS plug-in and what its product does."""

    location: Location
    practice: object
    api: requests.Session
    several_per_account: bool
    needs_posted_production: bool
    payment: bool = False  # records CareCredit as a payment (charged once the treatment is posted)
    started: int = 0  # cases started here (each location gets the whole persona mix)

    @property
    def label(self) -> str:
        how = " (shadow mode)" if self.shadow else " (CareCredit recorded as a payment)" if self.payment else ""
        return f"{self.location.code}, {self.practice.name}{how}"

    @property
    def waits_for_treatment(self) -> bool:
        return self.needs_posted_production or self.payment

    @property
    def shadow(self) -> bool:
        return self.location.mode == Location.Mode.SHADOW


@dataclass
class Started:
    case_id: int
    persona: str
    site: Site
    patient: dict
    expected: str
    seen_waiting: float | None = None
    posted: bool = False
    final: dict | None = field(default=None, repr=False)


class Command(BaseCommand):
    help = "Push N demo cases through the running system (every live location, or --location) and summarise the outcome."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=20)
        parser.add_argument("--location", default=None, help="One location's code (default: every live location).")
        parser.add_argument(
            "--timeout", type=float, default=None,
            help="Seconds to wait for the cases to settle (default 300, or longer than one production check "
                 "when a location waits for posted production).",
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--url", default=None,
            help="Chairside's web server (default: where a running `make run` says it listens, else CHAIRSIDE_PUBLIC_URL).",
        )

    def handle(self, *args, cases, location, timeout, seed, url=None, **options):
        rng = random.Random(seed)
        sites = self._sites(location)
        if timeout is None:
            timeout = 300.0
            if any(site.waits_for_treatment for site in sites):
                timeout = max(timeout, getattr(settings, "PRODUCTION_CHECK_SECONDS", 0) * 2 + 60.0)
        base = web_url(url)

        started: list[Started] = []
        for i in range(cases):
            site = sites[i % len(sites)]
            persona = MIX[site.started % len(MIX)]
            site.started += 1
            procedures = [rng.choice(MAJOR_PROCEDURES)] + rng.sample(MINOR_PROCEDURES, rng.randint(0, 2))
            total = sum(Decimal(p["fee"]) for p in procedures)
            clinic = site.location.clinic_ids
            patient = self._practice(site, "new_patient", {
                "first_name": rng.choice(FIRST_NAMES),
                "last_name": PERSONAS[persona][0] + rng.choice(SURNAMES),
                "birth_date": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "phone": f"+1555555{rng.randint(1000, 9999)}",
                "email": f"patient{rng.randint(1000, 99999)}@example.com",
                "address": {"line1": f"{rng.randint(1, 999)} Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
                "procedures": procedures,
                # A patient of the location's own clinic: another clinic's would be refused.
                **({"clinic_id": clinic[0]} if clinic else {}),
            })
            # Before the case starts: its steps run at once. (Recorded as a payment, nothing
            # is written that a hand-typed record or a refused write would stop.)
            if persona == "agreement_on_file" and not site.payment:
                self._practice(site, "enter_by_hand", patient)
            elif persona == "agreement_refused" and not site.payment:
                self._practice(site, "refuse_next_write", patient)
            promotion = "reduced_apr_36" if persona == "approved" and total >= 1000 and i % 2 else "deferred_12"
            case = self._post(site.api, f"{base}/api/v1/cases/", {
                "location": site.location.code,
                "patient_id": patient["patient_id"],
                "treatment_plan_id": patient["treatment_plan_id"],
                "down_payment": "0.00",
                "promotion": promotion,
            })
            started.append(Started(case["id"], persona, site, patient, self._expected(persona, site)))
            self._progress("started", i + 1, cases)
        self.stdout.write("")

        waiting = sorted({s.location.code for s in sites if s.waits_for_treatment})
        if waiting:
            self.stdout.write(
                f"Cases at {', '.join(waiting)} wait for posted production: posted {POST_DELAY_SECONDS:.0f} s after "
                "they are seen waiting, then written at the worker's next production check "
                f"(PRODUCTION_CHECK_SECONDS: every {DEMO_PRODUCTION_CHECK_SECONDS} s under make run)."
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(s.final is None for s in started):
            for item in started:
                if item.final is None:
                    self._watch(item, base)
            self._progress("settled", sum(s.final is not None for s in started), len(started))
            if any(s.final is None for s in started):
                time.sleep(1)
        self.stdout.write("")
        self._summary(started, sites, base)

    # --- the money ------------------------------------------------------------------------------

    def _reconcile(self, started: list[Started]) -> list[str]:
        """Reconcile each payment merchant's day(s) of this run's purchases now, through the
        reconciliation service (what beat does the next morning), and say what it found."""
        days: dict[tuple[str, str], set] = {}
        for item in started:
            purchase = (item.final or {}).get("purchase")
            if item.site.payment and purchase and purchase["status"] == "settled":
                days.setdefault((item.site.location.merchant_number, purchase["business_day"]), set()).add(item.case_id)
        if not days:
            return []
        problems = []
        # Every day is reconciled first (its log lines come out meanwhile), then the summary is
        # written as one clean block, as the README shows it.
        block = ["Reconciliation (the lender's settlement report against the ledger):"]
        for (merchant, day), ours in sorted(days.items()):
            run = reconciliation.reconcile_day(merchant, _date(day))
            items = list(run.items.all())
            mine = [i for i in items if i.case_id in ours]
            others = [i for i in items if i.case_id not in ours and i.outcome != ReconciliationItem.Outcome.MATCHED]
            exceptions = [i for i in mine if i.outcome != ReconciliationItem.Outcome.MATCHED]
            codes = ", ".join(sorted(Location.objects.filter(merchant_number=merchant).values_list("code", flat=True)))
            block.append(
                f"  merchant …{merchant[-4:]} ({codes}), {display.day(run.day)}: purchases {display.money(run.purchases)}, "
                f"refunds {display.money(run.refunds)}, fees {display.money(run.fees)}, net {display.money(run.net)}; "
                f"{len(mine)} of this run's purchases, {sum(i.outcome == 'matched' for i in mine)} matched, "
                f"exceptions: {len(exceptions)}" + (f"{' (' + run.error + ')' if run.error else ''}")
            )
            if others:
                block.append(
                    f"    and {len(others)} exception(s) of cases this run did not start (the demo history's live work, "
                    "which the sandbox never charged): see the console's Reconciliation page"
                )
            missing = ours - {i.case_id for i in mine}
            if run.error:
                problems.append(f"merchant …{merchant[-4:]} {day}: {run.error}")
            for item in exceptions:
                problems.append(f"{item.case.reference if item.case else '?'}: {item.get_outcome_display()}: {item.detail}")
            for case_id in missing:
                problems.append(f"{FinancedCase.objects.get(pk=case_id).reference}: not on the settlement report of {day}")
        for handler in logging.getLogger().handlers:  # logs written so far go before the block
            handler.flush()
        self.stdout.flush()
        self.stdout.write("\n".join(block))
        return problems

    # --- the locations -------------------------------------------------------------------------

    def _sites(self, code: str | None) -> list[Site]:
        if code is not None:
            location = Location.objects.filter(code=code).first()
            if location is None:
                raise CommandError(f"No location {code!r}: run `python manage.py seed_demo` first.")
            locations = [location]
        else:
            locations = list(Location.objects.filter(mode=Location.Mode.LIVE).order_by("code"))
        sites = []
        for location in locations:
            path = PRACTICES.get(location.pms_kind)
            try:
                practice_class = import_string(path) if path else None
            except ImportError as exc:
                practice_class, why = None, str(exc)
            else:
                why = f"no simulation for {location.pms_kind}"
            if practice_class is None:
                if code is not None:
                    raise CommandError(f"Location {location.code} cannot be simulated: {why}.")
                self.stdout.write(f"Skipping {location.code}: {why}.")
                continue
            try:
                practice = practice_class(location)
            except (RuntimeError, requests.RequestException) as exc:
                raise CommandError(f"Location {location.code}: {exc}") from None
            api = requests.Session()
            api.headers["Authorization"] = f"Token {self._token(location)}"
            sites.append(Site(
                location=location, practice=practice, api=api,
                several_per_account=partners.pms_allows_several_plans(location),
                needs_posted_production=partners.pms_needs_posted_production(location),
                payment=location.mode == Location.Mode.LIVE and effective_template(location).recording == Recording.PAYMENT,
            ))
        if not sites:
            raise CommandError("No live location to simulate: run `python manage.py seed_demo` first.")
        return sites

    @staticmethod
    def _expected(persona: str, site: Site) -> str:
        if persona in WRITE_PROBLEMS and (site.shadow or site.payment):
            return "completed"  # shadow mode writes nothing, a payment no agreement: nothing is refused
        if persona == "agreement_on_file" and site.several_per_account:
            return "completed"  # the product keeps several: the case's record goes beside it
        return PERSONAS[persona][1]

    # --- watching -------------------------------------------------------------------------------

    def _watch(self, item: Started, base: str) -> None:
        case = item.site.api.get(f"{base}/api/v1/cases/{item.case_id}/", timeout=10).json()
        state = case["state"]
        if state == "awaiting_production" and not item.posted:
            # The treatment is done and posted a little after the case is seen waiting.
            now = time.monotonic()
            item.seen_waiting = item.seen_waiting or now
            if now - item.seen_waiting >= POST_DELAY_SECONDS:
                self._practice(item.site, "post_production", item.patient)
                item.posted = True
        if state == item.expected or state in SETTLED_ANYWAY or (
            state in ("completed", "declined") and state != item.expected
        ):
            item.final = case

    # --- the summary ----------------------------------------------------------------------------

    def _summary(self, started: list[Started], sites: list[Site], base: str) -> None:
        wrong, attention = [], []
        self.stdout.write("By location:")
        for site in sites:
            mine = [s for s in started if s.site is site]
            if not mine:
                continue
            by_state, times, waited, verified, from_posting = {}, [], 0, 0, False
            for item in mine:
                case = item.final
                if case is None:
                    case = site.api.get(f"{base}/api/v1/cases/{item.case_id}/", timeout=10).json()
                    wrong.append(f"{site.location.code} {case['reference']} ({item.persona}) still {case['state']}")
                by_state[case["state"]] = by_state.get(case["state"], 0) + 1
                if item.final is None:
                    continue
                waited += item.seen_waiting is not None
                if case["state"] != item.expected:
                    wrong.append(f"{site.location.code} {case['reference']} ({item.persona}) ended {case['state']}: {case['state_reason']}")
                elif case["state"] == "needs_attention":
                    attention.append(f"{site.location.code} {case['reference']} ({item.persona}): {case['state_reason']}")
                if case["state"] == "completed" and site.payment:
                    problem = self._verify_money(site, case)
                    if problem:
                        wrong.append(f"{site.location.code} {case['reference']}: {problem}")
                    else:
                        verified += 1
                    if case.get("posted_at") and case.get("production_posted_at"):
                        times.append(_seconds(case["production_posted_at"], case["posted_at"]))
                        from_posting = True
                elif case["state"] == "completed":
                    problem = self._practice(site, "nothing_written" if site.shadow else "verify", case)
                    if problem:
                        wrong.append(f"{site.location.code} {case['reference']}: {problem}")
                    else:
                        verified += 1
                    # In shadow mode nothing is written: the arrangement is done when computed.
                    # Where the product waits for posted production, the clock starts when
                    # the treatment was posted (if the API says when), not at capture.
                    end = case["completed_at" if site.shadow else "arrangement_written_at"]
                    start = case["captured_at"]
                    if site.needs_posted_production and case.get("production_posted_at"):
                        start, from_posting = case["production_posted_at"], True
                    if end and start:
                        times.append(_seconds(start, end))
            self.stdout.write(f"  {site.label}: {len(mine)} cases")
            self.stdout.write("    " + ", ".join(f"{state} {count}" for state, count in sorted(by_state.items())))
            if site.needs_posted_production:
                self.stdout.write(f"    waited for posted production: {waited} (posted {POST_DELAY_SECONDS:.0f} s after they were seen waiting)")
            if times:
                p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 else times[0]
                since = "production posted" if from_posting else "capture"
                what = "time to the ledger (treatment posted → charged and posted)" if site.payment else f"time to arrangement ({since} → written)"
                self.stdout.write(
                    f"    {what}, {len(times)} cases: "
                    f"median {statistics.median(times):.2f} s, p95 {p95:.2f} s"
                )
            if site.shadow:
                self.stdout.write(f"    verified in {site.practice.name}: {verified} completed cases (shadow mode), nothing of Chairside's written")
            elif site.payment:
                self.stdout.write(
                    f"    verified in {site.practice.name}: {verified} completed cases charged once, with exactly one payment "
                    "(net) and one merchant fee adjustment (−fee) of the location's types, one ledger note, and an in-house "
                    "plan exactly where the location carries the rest"
                )
            else:
                self.stdout.write(
                    f"    verified in {site.practice.name}: {verified} completed cases with exactly one record and one "
                    "ledger note, exact terms in the product's shape"
                )
        wrong += self._reconcile(started)
        if attention:
            self.stdout.write("Needs attention, as their personas imply (the console's Needs attention list):\n  " + "\n  ".join(attention))
        if wrong:
            self.stdout.write(self.style.ERROR("Not as expected:\n  " + "\n  ".join(wrong)))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS(f"All {len(started)} cases settled as their personas imply."))

    def _verify_money(self, site: Site, case: dict) -> str:
        """"" when the case was charged once and the PMS holds exactly its payment (net) and
        merchant fee (−fee), of the location's types, one ledger note, and an in-house plan
        exactly when the practice carries the rest; else what differs."""
        purchase, template = case.get("purchase"), effective_template(site.location)
        if not purchase or purchase["status"] != "settled":
            return f"no settled purchase ({purchase and purchase['status']})"
        gross, fee, net = (Decimal(purchase[k]) for k in ("amount", "merchant_fee", "net_amount"))
        approved = Decimal(case["decision"]["approved_amount"])
        expected_gross = min(approved, Decimal(case["plan_total"]) - Decimal(case["requested_down_payment"]))
        rate = template.merchant_fee_rate(case["promotion"])
        expected_fee = (expected_gross * rate / 100).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
        problems = []
        if (gross, fee, net) != (expected_gross, expected_fee, expected_gross - expected_fee):
            problems.append(f"charged {gross} (fee {fee}, net {net}), expected {expected_gross} (fee {expected_fee})")
        found = sorted((p["kind"], p["amount"], p["type"]) for p in self._practice(site, "ledger_postings", case))
        expected = sorted([("payment", expected_gross - expected_fee, template.payment_type),
                           ("adjustment", -expected_fee, template.fee_adjustment_type)])
        if found != expected:
            problems.append(f"{site.practice.name} holds {found}, expected {expected}")
        records, notes = self._practice(site, "marked", case)
        shortfall = Decimal(case["plan_total"]) - Decimal(case["requested_down_payment"]) - gross
        in_house = shortfall > 0 and template.shortfall == "in_house"
        if len(notes) != 1 or len(records) != int(in_house):
            problems.append(f"{len(records)} plans and {len(notes)} ledger notes carry its marker (expected {int(in_house)} and 1)")
        if in_house and (case["arrangement"] or {}).get("kind") != "in_house":
            problems.append("no in-house arrangement for the rest")
        return "; ".join(problems)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _practice(site: Site, action: str, *args):
        """One call to the location's PMS plug-in; its failures end the run with its message."""
        try:
            return getattr(site.practice, action)(*args)
        except (RuntimeError, requests.RequestException) as exc:
            raise CommandError(f"{site.location.code}: {exc}") from None

    @staticmethod
    def _token(location) -> str:
        membership = Membership.objects.filter(location=location, role=Membership.Role.COORDINATOR).select_related("user").first()
        if membership is None:
            raise CommandError(f"Location {location.code} has no coordinator to act as.")
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


def _date(text: str):
    from datetime import date

    return date.fromisoformat(text)


def _seconds(start: str, end: str) -> float:
    from django.utils.dateparse import parse_datetime

    return (parse_datetime(end) - parse_datetime(start)).total_seconds()
