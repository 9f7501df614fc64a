"""How fast the billing console stays with 100,000 cases and their history.

Loads N cases (default 100,000) spread over a year and ten locations, with the rows the
flow leaves behind (decisions, arrangements, ledger notes, simple-history rows for each
state change, a few corrections and shadow comparisons), then requests the console's pages
through Django's test client and prints, for each page, the median time and the number of
SQL queries. Run it against PostgreSQL, in a database of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_console_bench \\
    CHAIRSIDE_VAR_DIR=/tmp/chairside-console-bench .venv/bin/python bench/admin_pages.py

The database is created and migrated if needed; the data is loaded once and reused by
later runs (--reload loads it again). Nothing here talks to a partner.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

D = Decimal
# The loaded cases' references: never a real one (those are CS- and eight letters).
BENCH_REFERENCE = r"^CS-BENCH[0-9]{7}$"
LOCATIONS = 10
BATCH = 2000
STATES = [  # (state, share): roughly what a year of a group's cases looks like
    ("completed", 70),
    ("declined", 8),
    ("expired", 5),
    ("cancelled", 3),
    ("needs_attention", 4),
    ("awaiting_decision", 5),
    ("approved", 2),
    ("captured", 3),
]
PATHS = {  # the states a case passed through, in order
    "captured": ["captured"],
    "awaiting_decision": ["captured", "application_sent", "awaiting_decision"],
    "approved": ["captured", "application_sent", "approved"],
    "completed": ["captured", "application_sent", "approved", "arrangement_written", "completed"],
    "declined": ["captured", "application_sent", "declined"],
    "expired": ["captured", "application_sent", "awaiting_decision", "expired"],
    "cancelled": ["captured", "application_sent", "awaiting_decision", "cancelled"],
    "needs_attention": ["captured", "application_sent", "approved", "needs_attention"],
}
# Surnames the loaded patients share (a search by one finds about 1 case in len(SURNAMES)).
SURNAMES = [f"{stem}{suffix}" for stem in ("Thompson", "Nguyen", "Garcia", "Okafor", "Smith", "Kowalski", "Haddad", "Lee")
            for suffix in ("", "son", "ski", "ez", "a", "o", "berg", "ley", "well", "field", "more", "ton", "ham", "wood", "er", "ard", "ell", "ini", "ova", "ak", "is", "ian", "ez-Ruiz", "-Jones", "sen")]


def ensure_database():
    """CREATE DATABASE for a PostgreSQL URL whose database does not exist yet."""
    import environ

    config = environ.Env.db_url_config(os.environ.get("DATABASE_URL", ""))
    if "postgresql" not in config.get("ENGINE", ""):
        print("warning: not PostgreSQL; times will not say much about production", file=sys.stderr)
        return
    import psycopg

    admin = psycopg.connect(
        host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"],
        password=config["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{config["NAME"]}"')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--reload", action="store_true", help="delete the loaded cases and load again")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page (after one warm-up)")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from financing.models import FinancedCase

    loaded = FinancedCase.objects.filter(reference__regex=BENCH_REFERENCE).count()
    if args.reload or loaded < args.cases:
        started = time.monotonic()
        load(args.cases)
        print(f"loaded {args.cases:,} cases in {time.monotonic() - started:.0f} s")
    report(args.runs)


# --- loading ---------------------------------------------------------------------------------


def load(n_cases: int):
    from django.contrib.auth import get_user_model

    from core import blind_index
    from django.db import connection, transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from financing.models import (
        ArrangementTemplate,
        Correction,
        Decision,
        FinancedCase,
        LedgerNote,
        Location,
        Membership,
        PaymentArrangement,
        ShadowComparison,
    )

    from notifications.models import Notification

    with transaction.atomic():
        Notification.objects.filter(reference__regex=BENCH_REFERENCE).delete()
        for model in (Correction, ShadowComparison, LedgerNote, PaymentArrangement, Decision):
            model.history.model.objects.filter(case__reference__regex=BENCH_REFERENCE).delete()
            model.objects.filter(case__reference__regex=BENCH_REFERENCE).delete()
        FinancedCase.history.model.objects.filter(reference__regex=BENCH_REFERENCE).delete()
        FinancedCase.objects.filter(reference__regex=BENCH_REFERENCE).delete()

        template, _ = ArrangementTemplate.objects.get_or_create(name="Bench standard")
        locations = []
        for i in range(LOCATIONS):
            location, _ = Location.objects.update_or_create(
                code=f"bench-{i:02d}",
                defaults=dict(
                    name=f"Bench Dental {i:02d}", template=template, pms_base_url="http://127.0.0.1:9", pms_api_key="x",
                    lender_base_url="http://127.0.0.1:9", lender_client_id="x", lender_client_secret="x",
                    merchant_number=f"53481200000000{i:02d}", mode="shadow" if i == LOCATIONS - 1 else "live",
                ),
            )
            locations.append(location)
        User = get_user_model()
        users = {}
        for username, sites in (("bench-admin", None), ("bench-central", locations[:3]), ("bench-billing", locations[:1])):
            user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": sites is None})
            for site in sites or []:
                Membership.objects.get_or_create(user=user, location=site, defaults={"role": "billing"})
            TOTPDevice.objects.get_or_create(user=user, name="bench", defaults={"confirmed": True})
            users[username] = user
        from django.contrib.auth.models import Permission

        perms = Permission.objects.filter(
            codename__in=["view_financedcase", "change_financedcase", "view_location", "add_correction", "view_correction", "view_shadowcomparison"]
        )
        for username in ("bench-central", "bench-billing"):
            users[username].user_permissions.set(perms)

    # The flow's timestamps are the point here: let the loader set them.
    for field in ("captured_at", "state_changed_at"):
        FinancedCase._meta.get_field(field).auto_now_add = False

    rng = random.Random(42)
    now = datetime.now(UTC)
    weights = [share for _, share in STATES]
    states = [state for state, _ in STATES]
    biller = users["bench-billing"]
    made = 0
    while made < n_cases:
        size = min(BATCH, n_cases - made)
        cases = []
        for i in range(size):
            state = rng.choices(states, weights)[0]
            captured = now - timedelta(days=rng.uniform(0, 364))
            location = locations[rng.randrange(LOCATIONS)]
            k = made + i
            case = FinancedCase(
                reference=f"CS-BENCH{k:07d}",
                location=location,
                patient_id=str(100000 + k),
                guarantor_id=str(100000 + k),
                treatment_plan_id=str(500000 + k),
                patient_short_name="Ava T.",
                procedures=[{"code": "D2740", "tooth": "3", "surface": "", "fee": "1250.00"}, {"code": "D2950", "tooth": "3", "surface": "", "fee": "310.00"}],
                plan_total=D("1560.00"),
                promotion="deferred_12",
                state=state,
                state_reason="Dentrix refused the payment agreement: first payment due is a holiday." if state == "needs_attention" else "",
                resume_state="approved" if state == "needs_attention" else "",
                application_id=f"app_b{k:08d}" if state != "captured" else "",
                captured_at=captured,
            )
            took = timedelta(seconds=rng.lognormvariate(5.5, 0.8))  # minutes, now and then hours
            step = took / 4
            case._path = [(s, captured + step * n) for n, s in enumerate(PATHS[state])]
            case.state_changed_at = case._path[-1][1]
            if state != "captured":
                case.application_sent_at = captured + step
            if state == "approved" and rng.random() < 0.5:  # half of them retrying after a partner error
                case.last_error, case.step_attempts = "Dentrix did not answer in time (503).", 3
            case.surname_token = blind_index.token("surname", rng.choice(SURNAMES))
            if state in ("approved", "completed", "needs_attention"):
                case.decided_at = captured + step * 2
            if state == "completed":
                if location.mode == "live":
                    case.arrangement_written_at = captured + step * 3
                case.completed_at = captured + step * 4
            cases.append(case)
        with transaction.atomic():
            FinancedCase.objects.bulk_create(cases, batch_size=BATCH)
            _load_related(cases, rng, biller)
        made += size
        print(f"\r  {made:,} / {n_cases:,} cases", end="", flush=True)
    print()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")


def _load_related(cases, rng, biller):
    from financing.models import (
        Correction,
        Decision,
        FinancedCase,
        LedgerNote,
        PaymentArrangement,
        ShadowComparison,
    )
    from notifications.models import Notification

    HistoricalCase = FinancedCase.history.model
    tracked = [f.attname for f in HistoricalCase._meta.fields if not f.name.startswith("history_") and f.attname in {g.attname for g in FinancedCase._meta.fields}]
    history, decisions, arrangements, notes, shadows, confirmations = [], [], [], [], [], []
    for case in cases:
        values = {name: getattr(case, name) for name in tracked}
        for n, (state, at) in enumerate(case._path):
            history.append(HistoricalCase(**{**values, "state": state, "state_changed_at": at}, history_date=at, history_type="+" if n == 0 else "~"))
        if case.decided_at:
            decisions.append(Decision(case=case, status="approved", raw_status="APPROVED", requested_amount=D("1560.00"), approved_amount=D("1560.00"),
                                      credit_limit=D("5000.00"), offers=[{"code": "deferred_12", "kind": "deferred", "months": 12, "apr": "0.00", "min_amount": "200.00"}],
                                      decided_at=case.decided_at))
        if case.state == "completed":
            written = case.arrangement_written_at is not None
            arrangements.append(PaymentArrangement(
                case=case, marker=case.marker, promotion="deferred_12", agreement_date=case.decided_at.date(), plan_total=D("1560.00"),
                down_payment=D("0.00"), financed_amount=D("1560.00"), recurring_amount=D("130.00"), number_of_payments=12,
                final_payment=D("130.00"), frequency="monthly", first_payment_date=(case.decided_at + timedelta(days=30)).date(), apr=D("0.00"),
                total_of_payments=D("1560.00"), finance_charge=D("0.00"), schedule=[], note=f"{case.marker} CareCredit deferred_12",
                pms_arrangement_id=str(700000 + case.pk) if written else "", write_status="written" if written else "shadow",
                written_at=case.arrangement_written_at, verified_at=case.arrangement_written_at,
            ))
            # The coordinator's confirmation: handed over, now and then not delivered.
            status = "undelivered" if rng.random() < 0.01 else "sent"
            confirmations.append(Notification(
                dedupe_key=f"case:{case.pk}:case_approved:sms:1", reference=case.reference, channel="sms", recipient="+15555550100",
                template="case_approved", body="Approved.", status=status, error="30003 Unreachable destination handset" if status != "sent" else "",
                attempts=1,
            ))
            if written:
                notes.append(LedgerNote(case=case, note_type="account", text=f"CareCredit approved. {case.marker}", pms_note_id=str(900000 + case.pk),
                                        write_status="written", written_at=case.completed_at))
            else:
                differs = rng.random() < 0.3
                shadows.append(ShadowComparison(
                    case=case, location_id=case.location_id, outcome="mismatch" if differs else "match", pms_agreement_id=str(600000 + case.pk),
                    discrepancies=[{"field": "first_payment_due", "chairside": "2026-12-01", "dentrix": "2026-12-15"}] if differs else [],
                    discrepancy_count=int(differs), compared_at=case.completed_at,
                ))
    HistoricalCase.objects.bulk_create(history, batch_size=BATCH)
    Notification.objects.bulk_create(confirmations, batch_size=BATCH)
    for model, rows in ((Decision, decisions), (PaymentArrangement, arrangements), (LedgerNote, notes), (ShadowComparison, shadows)):
        model.objects.bulk_create(rows, batch_size=BATCH)
        model.history.model.objects.bulk_create(
            [model.history.model(**{f.attname: getattr(row, f.attname) for f in model._meta.fields}, history_date=row.case.captured_at, history_type="+") for row in rows],
            batch_size=BATCH,
        )
    corrections = [
        Correction(arrangement=a, case=a.case, field="first_payment_date", before=a.first_payment_date.isoformat(),
                   after=(a.first_payment_date + timedelta(days=14)).isoformat(), why="Patient asked for the 15th", actor=biller)
        for a in arrangements if a.write_status == "written" and rng.random() < 0.03
    ]
    Correction.objects.bulk_create(corrections, batch_size=BATCH)
    Correction.history.model.objects.bulk_create(
        [Correction.history.model(**{f.attname: getattr(c, f.attname) for f in Correction._meta.fields}, history_date=c.created_at, history_type="+", history_user_id=biller.pk)
         for c in corrections],
        batch_size=BATCH,
    )


# --- timing ----------------------------------------------------------------------------------


def report(runs: int):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from financing.models import Correction, FinancedCase

    def client_for(username):
        user = get_user_model().objects.get(username=username)
        client = Client()
        client.force_login(user)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user, name="bench").persistent_id
        session.save()
        return client

    admin, central = client_for("bench-admin"), client_for("bench-central")
    corrected = Correction.objects.filter(case__reference__regex=BENCH_REFERENCE).select_related("case").order_by("-pk").first()
    detail_case = corrected.case if corrected else FinancedCase.objects.filter(state="completed").order_by("-pk").first()
    someone = FinancedCase.objects.filter(reference__regex=BENCH_REFERENCE).order_by("pk")[500]
    total = FinancedCase.objects.count()
    pages = [
        ("case list, superuser (all locations)", admin, "/admin/financing/financedcase/"),
        ("case list, central (3 locations), needs attention", central, "/admin/financing/financedcase/?attention=needs_attention"),
        ("case list, central, state + captured range filter", central, "/admin/financing/financedcase/?state__exact=completed&captured_from=2026-01-01&captured_to=2026-06-30"),
        ("case list, search by reference", admin, f"/admin/financing/financedcase/?q={someone.reference}"),
        ("case list, search by PMS patient id", central, f"/admin/financing/financedcase/?q={someone.patient_id}"),
        ("case list, search by surname", central, "/admin/financing/financedcase/?q=okaforson"),
        ("needs you today, superuser (all locations)", admin, "/admin/"),
        ("needs you today, central (3 locations)", central, "/admin/"),
        ("case page (history, corrections, timeline)", admin, f"/admin/financing/financedcase/{detail_case.pk}/change/"),
        ("dashboard, superuser, 12 weeks", admin, "/admin/dashboard/"),
        ("dashboard, superuser, 52 weeks", admin, "/admin/dashboard/?weeks=52"),
        ("dashboard, central, 12 weeks", central, "/admin/dashboard/"),
        ("dashboard CSV, superuser, 52 weeks", admin, "/admin/dashboard.csv?weeks=52"),
        ("case export CSV, superuser, every case", admin, "/admin/financing/financedcase/export.csv"),
        ("case export XLSX, superuser, every case", admin, "/admin/financing/financedcase/export.xlsx"),
        ("corrections list", admin, "/admin/financing/correction/"),
        ("shadow comparisons list", admin, "/admin/financing/shadowcomparison/"),
    ]
    print(f"\n{total:,} cases, {FinancedCase.history.model.objects.count():,} case history rows, {connection.vendor}")
    print(f"{'page':<52} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for label, client, url in pages:
        client.get(url)  # warm-up: templates, caches, the database's buffers
        times = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                if response.streaming:
                    b"".join(response.streaming_content)  # an export is written as it is read
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        print(f"{label:<52} {statistics.median(times):>10.1f} {max(times):>8.1f} {len(queries):>8}")


if __name__ == "__main__":
    main()
