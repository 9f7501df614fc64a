"""Demo data for the embedded system (idempotent: run it as often as you like)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from financing.models import ArrangementTemplate, Location, Membership
from notifications.models import ContactPreference

DEMO_PASSWORD = "chairside-demo"
# Every demo login's second factor: one fixed, published TOTP secret (demo only — real staff
# enrol their own device). Base32 for an authenticator app: MNUGC2LSONUWIZJNMRSW23ZNORXXI4BB;
# or `python manage.py demo_totp <user>` prints the current code.
DEMO_TOTP_KEY = b"chairside-demo-totp!".hex()
DEMO_TOTP_BASE32 = "MNUGC2LSONUWIZJNMRSW23ZNORXXI4BB"
DEMO_DEVICE_NAME = "demo"

# code, name, time zone, merchant number, clinic served. The three share one Dentrix
# connector (the sandbox, a multi-clinic database): each reaches only its clinic's patients.
LOCATIONS = [
    ("demo-main", "Main Street Dental", "America/New_York", "5348120000000001", "1"),
    ("demo-north", "Northside Family Dentistry", "America/Chicago", "5348120000000002", "2"),
    ("demo-south", "Southgate Smiles", "America/Los_Angeles", "5348120000000003", "3"),
]

# username, role per location code (None = superuser), email, phone
USERS = [
    ("admin", None, "admin@example.com", ""),
    ("coordinator", {"demo-main": Membership.Role.COORDINATOR}, "coordinator@example.com", "+15555550100"),
    ("billing", {"demo-main": Membership.Role.BILLING}, "billing@example.com", "+15555550101"),
    (
        "central",
        {code: Membership.Role.BILLING for code, *_ in LOCATIONS},
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
]
# Model permissions say what a role may do; memberships say where.
GROUP_PERMISSIONS = {
    Membership.Role.COORDINATOR: VIEW_ALL,
    Membership.Role.BILLING: VIEW_ALL + BILLING,
    Membership.Role.ADMIN: VIEW_ALL + BILLING + ["financing.change_location"],
}


class Command(BaseCommand):
    help = "Create the demo template, locations wired to the sandboxes, and demo staff."

    @transaction.atomic
    def handle(self, *args, **options):
        template, _ = ArrangementTemplate.objects.get_or_create(name="Group standard")
        locations = {}
        for code, name, tz, merchant, clinic in LOCATIONS:
            locations[code], _ = Location.objects.update_or_create(
                code=code,
                defaults=dict(
                    name=name,
                    timezone=tz,
                    template=template,
                    pms_kind="dentrix",
                    pms_base_url=settings.DENTRIX_SANDBOX_URL,
                    pms_api_key="sandbox",
                    pms_clinic_ids=clinic,
                    lender_kind="carecredit",
                    lender_base_url=settings.CARECREDIT_SANDBOX_URL,
                    lender_client_id="chairside-sandbox",
                    lender_client_secret="sandbox-secret",
                    merchant_number=merchant,
                ),
            )
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
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {len(LOCATIONS)} locations, {len(USERS)} staff."))
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
