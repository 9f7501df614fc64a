"""How fast the coordinator hears: decision received → confirmation handed to the provider.

"Received" is the moment the case recorded the decision (its history row entering
approved/declined), not the lender's own decision timestamp, which can be earlier by the
webhook or poll delay. "Handed to the provider" is the delivery record's sent_at. For an
approval the path includes writing the agreement and the ledger note, since the
confirmation goes out only once they are in Dentrix.
"""

import statistics
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from financing.models import CaseState, FinancedCase
from notifications.models import Notification

OUTCOMES = {"case_approved": CaseState.APPROVED, "case_declined": CaseState.DECLINED}


class Command(BaseCommand):
    help = "Median and p95 of decision received → confirmation handed to the provider."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=float, default=None, help="Only cases captured this recently.")

    def handle(self, *args, minutes, **options):
        cases = FinancedCase.objects.all()
        if minutes:
            cases = cases.filter(captured_at__gte=timezone.now() - timedelta(minutes=minutes))
        by_reference = {c.reference: c for c in cases}
        received = {}
        for row in FinancedCase.history.filter(id__in=[c.pk for c in by_reference.values()], state__in=OUTCOMES.values()).order_by("history_date"):
            received.setdefault((row.id, row.state), row.history_date)
        for template, state in OUTCOMES.items():
            for channel in ("email", "sms"):
                seconds, in_notifications = [], []
                for n in Notification.objects.filter(
                    reference__in=by_reference, template=template, channel=channel, sent_at__isnull=False
                ).exclude(dedupe_key__contains=":resend:"):
                    start = received.get((by_reference[n.reference].pk, state))
                    if start is not None:
                        seconds.append((n.sent_at - start).total_seconds())
                        in_notifications.append((n.sent_at - n.created_at).total_seconds())
                if seconds:
                    self.stdout.write(f"{template} by {channel}: {_summary(seconds)}")
                    self.stdout.write(f"  of which queued → handed over: {_summary(in_notifications)}")


def _summary(seconds: list[float]) -> str:
    p95 = statistics.quantiles(seconds, n=20, method="inclusive")[18] if len(seconds) > 1 else seconds[0]
    return f"{len(seconds)} cases, median {statistics.median(seconds):.3f} s, p95 {p95:.3f} s, max {max(seconds):.3f} s"
