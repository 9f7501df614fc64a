"""Reconcile a lender business day now and print what was found (what beat does each morning).

    .venv/bin/python manage.py reconcile                          # yesterday, every live merchant
    .venv/bin/python manage.py reconcile --day 2026-12-04 --merchant 5348120000000001

Per merchant: the report's purchases, refunds, fees and net, then how many lines matched and
each exception in plain words. Exits 1 when a run could not read its partners.
"""

from collections import Counter
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from financing import display
from financing.models import ReconciliationItem
from financing.services import reconciliation


class Command(BaseCommand):
    help = "Match a lender business day's settlement reports against the ledger and print a summary."

    def add_arguments(self, parser):
        parser.add_argument("--day", help="The lender's business day, YYYY-MM-DD (default: yesterday on its clock).")
        parser.add_argument("--merchant", action="append", default=[], help="A merchant number (repeatable); default: every live one.")

    def handle(self, *args, day, merchant, **options):
        try:
            day = date.fromisoformat(day) if day else reconciliation.lender_day() - timedelta(days=1)
        except ValueError:
            raise CommandError(f"--day takes a date as YYYY-MM-DD, not {day!r}.") from None
        merchants = merchant or reconciliation.merchants_to_reconcile()
        unknown = set(merchants) - set(reconciliation.merchants_known())
        if unknown:
            raise CommandError(f"No location has the merchant number {', '.join(sorted(unknown))}.")
        failed = False
        for number in merchants:
            run = reconciliation.reconcile_day(number, day)
            self.stdout.write(self.style.SUCCESS(f"Merchant …{number[-4:]} · {display.day(day)}"))
            if run.error:
                failed = True
                self.stdout.write(self.style.ERROR(f"  Not reconciled: {run.error}"))
                continue
            items = list(run.items.select_related("case").order_by("pk"))
            outcomes = Counter(item.outcome for item in items)
            self.stdout.write(
                f"  Purchases {display.money(run.purchases)} · fees {display.money(run.fees)} · "
                f"refunds {display.money(run.refunds)} · net {display.money(run.net)}"
            )
            self.stdout.write(
                "  " + " · ".join(f"{label}: {outcomes.get(value, 0)}" for value, label in ReconciliationItem.Outcome.choices)
            )
            for item in items:
                if item.outcome != ReconciliationItem.Outcome.MATCHED:
                    state = " (resolved)" if item.resolved_at else ""
                    self.stdout.write(f"  - {item.get_outcome_display()}{state}: {item.detail}")
        if failed:
            raise SystemExit(1)
