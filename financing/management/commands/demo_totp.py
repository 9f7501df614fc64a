"""Print the current sign-in code of a demo login's second factor.

Only the devices seed_demo created (named "demo", with the published demo secret) are
read: a real staff member's device is never printed.
"""

from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from .seed_demo import DEMO_DEVICE_NAME, DEMO_TOTP_KEY


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo login (admin, coordinator, billing, central)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, username, **options):
        device = TOTPDevice.objects.filter(user__username=username, name=DEMO_DEVICE_NAME, key=DEMO_TOTP_KEY).first()
        if device is None:
            raise CommandError(f"{username} has no demo second factor (run seed_demo first; real devices are never printed).")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        self.stdout.write(f"{code:0{device.digits}d}")
