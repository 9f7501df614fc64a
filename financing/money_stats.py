"""The dashboard's money: what CareCredit funded per location and week (purchases, merchant
fees, refunds, net), the reconciliation exceptions still open, and the approvals that
expired unused (financing/dashboard.py shows them; a fixed number of queries).

- A purchase counts in the week of its lender business day; a refund in the week it was
  made (the lender's date). Net = purchases − fees − refunds: what reaches the bank, as on
  the settlement reports.
- Approvals expired unused: cases EXPIRED with reasons.approval_expired_unused's words,
  by the week they expired.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from .models import CaseState, FinancedCase, Purchase, ReconciliationItem, Refund

ZERO = Decimal("0.00")
LENDER_ZONE_NAME = "America/New_York"
EXPIRED_UNUSED_WORDS = "approval expired unused on"  # reasons.approval_expired_unused


@dataclass
class MoneyCell:
    purchases: Decimal = ZERO
    fees: Decimal = ZERO
    refunds: Decimal = ZERO
    count: int = 0

    @property
    def net(self) -> Decimal:
        return self.purchases - self.fees - self.refunds

    def add(self, other: "MoneyCell"):
        self.purchases += other.purchases
        self.fees += other.fees
        self.refunds += other.refunds
        self.count += other.count


def _week(day):
    return day - timedelta(days=day.weekday())


def money_context(dashboard) -> dict:
    from zoneinfo import ZoneInfo

    ids = [loc.pk for loc in dashboard.locations]
    first = dashboard.weeks[0]
    cells: dict = {}

    def cell(location_id, week) -> MoneyCell:
        return cells.setdefault((location_id, week), MoneyCell())

    purchases = (
        Purchase.objects.filter(case__location_id__in=ids, status=Purchase.Status.SETTLED, business_day__gte=first)
        .values("case__location_id", "business_day")
        .annotate(gross=Sum("amount"), fee=Sum("merchant_fee"), n=Count("pk"))
        .order_by()
    )
    for row in purchases:
        c = cell(row["case__location_id"], _week(row["business_day"]))
        c.purchases += row["gross"]
        c.fees += row["fee"]
        c.count += row["n"]
    start = datetime.combine(first, time.min, tzinfo=ZoneInfo(LENDER_ZONE_NAME))
    refunds = (
        Refund.objects.filter(case__location_id__in=ids, status=Refund.Status.REFUNDED, refunded_at__gte=start)
        .annotate(day=TruncDate("refunded_at", tzinfo=ZoneInfo(LENDER_ZONE_NAME)))
        .values("case__location_id", "day")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    for row in refunds:
        cell(row["case__location_id"], _week(row["day"])).refunds += row["total"]
    for (location_id, week), c in list(cells.items()):
        for key in ((location_id, None), (None, week), (None, None)):
            cell(*key).add(c)

    open_items = dict(
        ReconciliationItem.objects.filter(location_id__in=ids, resolved_at=None)
        .exclude(outcome=ReconciliationItem.Outcome.MATCHED)
        .values_list("location_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    expired = dict(
        FinancedCase.objects.filter(
            location_id__in=ids, state=CaseState.EXPIRED, state_reason__contains=EXPIRED_UNUSED_WORDS,
            state_changed_at__gte=datetime.combine(first, time.min, tzinfo=UTC),
        )
        .values_list("location_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    rows = [
        {
            "location": loc,
            "total": cells.get((loc.pk, None)) or MoneyCell(),
            "open_exceptions": open_items.get(loc.pk, 0),
            "expired_unused": expired.get(loc.pk, 0),
        }
        for loc in dashboard.locations
    ]
    weeks = [(week, cells.get((None, week)) or MoneyCell()) for week in reversed(dashboard.weeks)]
    return {
        "money_rows": rows,
        "money_weeks": weeks,
        "money_total": cells.get((None, None)) or MoneyCell(),
        "money_open_exceptions": sum(open_items.values()),
        "money_expired_unused": sum(expired.values()),
        "money_cells": cells,
    }
