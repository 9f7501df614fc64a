"""Demo data for the embedded system (idempotent: run it as often as you like).

`--history` adds twelve weeks of cases across the demo locations (financing.demo.history),
once: what `make run` seeds, so every page of the console has something to show.
"""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from financing.demo import history as demo_history
from financing.demo.money import EXAMPLE_FEE_RATES
from financing.models import ArrangementTemplate, Location, Membership, Recording, Shortfall, TemplateOverride
from notifications.models import ContactPreference

DEMO_PASSWORD = "chairside-demo"
# Every demo login's second factor: one fixed, published TOTP secret (demo only — real staff
# enrol their own device). Base32 for an authenticator app: MNUGC2LSONUWIZJNMRSW23ZNORXXI4BB;
# or `python manage.py demo_totp <user>` prints the current code.
DEMO_TOTP_KEY = b"chairside-demo-totp!".hex()
DEMO_TOTP_BASE32 = "MNUGC2LSONUWIZJNMRSW23ZNORXXI4BB"
DEMO_DEVICE_NAME = "demo"

# code, name, time zone, merchant number, clinic served, mode, PMS kind, the setting naming
# its connector's URL. The first three share one Dentrix G connector (the sandbox, a
# multi-clinic database): each reaches only its clinic's patients. Southgate runs in shadow
# mode: Chairside computes every arrangement and compares it with the one staff type into
# Dentrix by hand, writing nothing (how a group proves the workflow). The group's other
# practices came with their own PMS: Dentrix Enterprise, Dentrix Ascend and Eaglesoft, each
# its own practice database (a sandbox per product), the location serving its clinic 1.
LOCATIONS = [
    ("demo-main", "Main Street Dental", "America/New_York", "5348120000000001", "1", Location.Mode.LIVE,
     "dentrix", "DENTRIX_SANDBOX_URL"),
    ("demo-north", "Northside Family Dentistry", "America/Chicago", "5348120000000002", "2", Location.Mode.LIVE,
     "dentrix", "DENTRIX_SANDBOX_URL"),
    ("demo-south", "Southgate Smiles", "America/Los_Angeles", "5348120000000003", "3", Location.Mode.SHADOW,
     "dentrix", "DENTRIX_SANDBOX_URL"),
    ("demo-enterprise", "Lakeview Dental Partners", "America/Denver", "5348120000000004", "1", Location.Mode.LIVE,
     "dentrix_enterprise", "DENTRIX_ENTERPRISE_SANDBOX_URL"),
    ("demo-ascend", "Canyon Ridge Dental", "America/Phoenix", "5348120000000005", "1", Location.Mode.LIVE,
     "dentrix_ascend", "DENTRIX_ASCEND_SANDBOX_URL"),
    ("demo-eaglesoft", "Harborview Dentistry", "America/New_York", "5348120000000006", "1", Location.Mode.LIVE,
     "eaglesoft", "EAGLESOFT_SANDBOX_URL"),
]
# Where a location departs from the group standard, and why. Two record CareCredit the native
# way, as a payment and a merchant-fee adjustment (docs/money.md): Northside also carries the
# rest of a partial approval on an in-house plan; Lakeside asks the patient for it up front.
OVERRIDES = {
    "demo-north": {
        "first_payment_day_of_month": 15,
        "recording": Recording.PAYMENT,
        "shortfall": Shortfall.IN_HOUSE,
        "why": "Northside's patients asked to pay after the mid-month payday. Northside records CareCredit as a payment "
               "with its merchant fee, and carries what CareCredit does not approve on an in-house plan.",
    },
    "demo-od": {
        "recording": Recording.PAYMENT,
        "why": "Lakeside records CareCredit in Open Dental as a payment with its merchant fee adjustment, "
               "as Open Dental's CareCredit integration does.",
    },
    # Ascend starts a plan one month before its first payment, and a first payment on the
    # 29th to the 31st may have no such start: the 1st always has one.
    "demo-ascend": {
        "first_payment_day_of_month": 1,
        "why": "Dentrix Ascend starts a plan one month before its first payment; first payments on the 1st always have one.",
    },
}
# Open Dental locations: code, name, time zone, merchant number, clinic (ClinicNum), customer key.
# Lakeside runs Open Dental (the sandbox on OPENDENTAL_SANDBOX_URL, its API under /api/v1):
# switched over by entering the office's customer key; Open Dental allows one request per
# second per customer key, so the location paces itself at 1.
OPENDENTAL_LOCATIONS = [
    ("demo-od", "Lakeside Dental (Open Dental)", "America/Boise", "5348120000000007", "1", "sandbox-customer"),
]

# username, role per location code (None = superuser), email, phone
USERS = [
    ("admin", None, "admin@example.com", ""),
    ("coordinator", {"demo-main": Membership.Role.COORDINATOR}, "coordinator@example.com", "+15555550100"),
    ("coordinator-north", {"demo-north": Membership.Role.COORDINATOR}, "coordinator.north@example.com", "+15555550103"),
    ("coordinator-south", {"demo-south": Membership.Role.COORDINATOR}, "coordinator.south@example.com", "+15555550104"),
    ("coordinator-enterprise", {"demo-enterprise": Membership.Role.COORDINATOR}, "coordinator.enterprise@example.com", "+15555550105"),
    ("coordinator-ascend", {"demo-ascend": Membership.Role.COORDINATOR}, "coordinator.ascend@example.com", "+15555550106"),
    ("coordinator-eaglesoft", {"demo-eaglesoft": Membership.Role.COORDINATOR}, "coordinator.eaglesoft@example.com", "+15555550107"),
    ("coordinator-od", {"demo-od": Membership.Role.COORDINATOR}, "coordinator.od@example.com", "+15555550108"),
    ("billing", {"demo-main": Membership.Role.BILLING}, "billing@example.com", "+15555550101"),
    (
        "central",
        {code: Membership.Role.BILLING for code, *_ in LOCATIONS + OPENDENTAL_LOCATIONS},
        "central.billing@example.com",
        "+15555550102",
    ),
]


VIEW_ALL = [
    "financing.view_financedcase",
    "financing.view_location",
    "financing.view_arrangementtemplate",
    "financing.view_inboundevent",
    "financing.view_correction",
    "financing.view_shadowcomparison",
    "financing.view_templateoverride",
    "notifications.view_notification",
    "financing.view_prescreen",  # Tomorrow's patients
    "financing.view_prescreenoptout",
]
# Coordinators start cases from Tomorrow's patients, screen a day again, record an opt-out.
COORDINATING = [
    "financing.add_financedcase",
    "financing.change_prescreenrun",
    "financing.add_prescreenoptout",
    "financing.delete_prescreenoptout",
]
# Billing fixes cases, records corrections and keeps the standard (a group template only
# when every location using it is theirs: see ArrangementTemplateAdmin).
BILLING = [
    "financing.change_financedcase",
    "financing.add_correction",
    "financing.change_arrangementtemplate",
    "financing.add_templateoverride",
    "financing.change_templateoverride",
    "notifications.change_notification",  # the per-record "resend" action
    "financing.add_prescreenoptout",
    # Reconciliation: the page and the accountant's CSV; Post the missing entries, Mark
    # resolved, Run again.
    "financing.view_reconciliationitem",
    "financing.change_reconciliationitem",
]
# Model permissions say what a role may do; memberships say where.
GROUP_PERMISSIONS = {
    Membership.Role.COORDINATOR: VIEW_ALL + COORDINATING,
    Membership.Role.BILLING: VIEW_ALL + BILLING,
    Membership.Role.ADMIN: VIEW_ALL + BILLING + COORDINATING + ["financing.change_location"],
}


class Command(BaseCommand):
    help = "Create the demo template, locations wired to the sandboxes, and demo staff (--history: and twelve weeks of cases)."

    def add_arguments(self, parser):
        parser.add_argument("--history", action="store_true", help="Also write twelve weeks of demo cases (once).")
        parser.add_argument("--seed", type=int, default=demo_history.SEED, help="The history's random seed (same seed, same cases).")

    def handle(self, *args, history: bool = False, seed: int = demo_history.SEED, **options):
        self._staff_and_locations()
        if history:
            self._history(seed)

    def _history(self, seed):
        started = time.monotonic()
        result = demo_history.write_history(seed=seed)
        took = time.monotonic() - started
        if "existing" in result:
            self.stdout.write(f"Demo history already there ({result['existing']} cases): nothing added.")
        elif "other" in result:
            raise CommandError(
                f"Another demo history ({result['other']} cases, from another --seed) is in this database: "
                "start from an empty one (make clean) to write this one."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Demo history: {result['created']} cases over twelve weeks, "
                                   f"{result['corrections']} corrections, in {took:.1f} s.")
            )

    @transaction.atomic
    def _staff_and_locations(self):
        template, _ = ArrangementTemplate.objects.get_or_create(name="Group standard")
        if not template.merchant_fee_rates:
            # Example rates (the console says so): a real group types its own agreement's.
            template.merchant_fee_rates = dict(EXAMPLE_FEE_RATES)
            template.save()
        locations = {}
        for code, name, tz, merchant, clinic, mode, kind, url_setting in LOCATIONS:
            locations[code], _ = Location.objects.update_or_create(
                code=code,
                defaults=dict(
                    name=name,
                    timezone=tz,
                    mode=mode,
                    template=template,
                    pms_kind=kind,
                    pms_base_url=getattr(settings, url_setting),
                    pms_api_key="sandbox",
                    pms_clinic_ids=clinic,
                    lender_kind="carecredit",
                    lender_base_url=settings.CARECREDIT_SANDBOX_URL,
                    lender_client_id="chairside-sandbox",
                    lender_client_secret="sandbox-secret",
                    merchant_number=merchant,
                ),
            )
        for code, name, tz, merchant, clinic, customer_key in OPENDENTAL_LOCATIONS:
            locations[code], _ = Location.objects.update_or_create(
                code=code,
                defaults=dict(
                    name=name,
                    timezone=tz,
                    mode=Location.Mode.LIVE,
                    template=template,
                    pms_kind="opendental",
                    pms_base_url=f"{settings.OPENDENTAL_SANDBOX_URL}/api/v1",
                    pms_api_key=customer_key,
                    pms_clinic_ids=clinic,
                    pms_requests_per_second=1,
                    lender_kind="carecredit",
                    lender_base_url=settings.CARECREDIT_SANDBOX_URL,
                    lender_client_id="chairside-sandbox",
                    lender_client_secret="sandbox-secret",
                    merchant_number=merchant,
                ),
            )
        for code, override in OVERRIDES.items():
            TemplateOverride.objects.update_or_create(location=locations[code], defaults=override)
        groups = {
            role: self._group(role.label, perms) for role, perms in GROUP_PERMISSIONS.items()
        }
        User = get_user_model()
        for username, roles, email, phone in USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"email": email})
            user.is_staff = True
            user.is_superuser = roles is None
            if created:
                user.set_password(DEMO_PASSWORD)
            user.save()
            ContactPreference.objects.update_or_create(
                user=user, defaults={"phone": phone, "by_email": True, "by_sms": bool(phone)}
            )
            for code, role in (roles or {}).items():
                Membership.objects.update_or_create(user=user, location=locations[code], defaults={"role": role})
                user.groups.add(groups[role])
            Token.objects.get_or_create(user=user)
            TOTPDevice.objects.update_or_create(
                user=user, name=DEMO_DEVICE_NAME, defaults={"key": DEMO_TOTP_KEY, "confirmed": True}
            )
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {len(locations)} locations, {len(USERS)} staff."))
        self.stdout.write(
            f"Second factor for every demo login: TOTP secret {DEMO_TOTP_BASE32} "
            "(or: python manage.py demo_totp <user>)."
        )

    @staticmethod
    def _group(name, perms):
        group, _ = Group.objects.get_or_create(name=name)
        codenames = [p.split(".", 1)[1] for p in perms]
        group.permissions.set(Permission.objects.filter(codename__in=codenames))
        return group
