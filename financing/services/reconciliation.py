"""Reconciliation: every dollar the lender settled, matched to Chairside's records and to the
PMS ledger itself.

For one merchant and one lender business day (the lender's date in America/New_York), the
lender's settlement report is read (`Lender.settlement_report`) and each line is matched:

- a purchase line to the case's `Purchase` (gross, fee, net) and to the two entries its
  posting step wrote in the PMS: the payment (= net) and the merchant-fee adjustment
  (= −fee), found on the patient's ledger by their markers (`markers.posting_marker`);
- a refund line to the `Refund` and its refund adjustment (= +amount);
- every purchase or refund of ours settled on that day that the report lacks.

Outcomes (ReconciliationItem.Outcome): matched; missing in the PMS (an entry is not on the
ledger: Chairside never posted it, or it was removed there); missing at the lender; amount
differs (the lender's gross or fee is not Chairside's — e.g. the template's fee rate is not
the one in the lender's agreement — or the ledger shows another amount).

One ReconciliationRun per merchant and day. Running it again replaces its items, keeping the
resolution of every exception that is found again unchanged. A partner that cannot be read
records `error` on the run; beat tries such a run again (`runs_to_start`).
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import display, partners
from ..markers import find_by_marker, posting_marker
from ..models import (
    CaseState,
    FinancedCase,
    LedgerPosting,
    Location,
    Purchase,
    ReconciliationItem,
    ReconciliationRun,
    Refund,
    WriteStatus,
)
from ..ports import LedgerEntry, PartnerError, SettlementLine, TransactionKind

log = logging.getLogger(__name__)

# Synchrony (CareCredit) is in Stamford, CT: its business day is its date there.
LENDER_ZONE = ZoneInfo("America/New_York")
ZERO = Decimal("0.00")
Outcome = ReconciliationItem.Outcome


class ReconciliationError(Exception):
    """What a clerk asked for cannot be done (the message says why, in plain words)."""


def lender_day(moment: datetime | None = None) -> date:
    return (moment or timezone.now()).astimezone(LENDER_ZONE).date()


def merchants_to_reconcile() -> list[str]:
    """The merchant numbers of the live locations (shadow mode charges nothing)."""
    return sorted(set(Location.objects.filter(mode=Location.Mode.LIVE).values_list("merchant_number", flat=True)))


def merchants_known() -> list[str]:
    return sorted(set(Location.objects.values_list("merchant_number", flat=True)))


def runs_to_start(now: datetime | None = None) -> list[int]:
    """Beat: once the lender's clock has passed RECONCILIATION_HOUR, yesterday's run of each
    merchant, made if missing; a run not finished or that failed is handed out again (running
    twice is harmless: a run replaces its own items)."""
    now = now or timezone.now()
    local = now.astimezone(LENDER_ZONE)
    if local.hour < settings.RECONCILIATION_HOUR:
        return []
    day = local.date() - timedelta(days=1)
    run_ids = []
    for merchant in merchants_to_reconcile():
        run, _ = ReconciliationRun.objects.get_or_create(merchant_number=merchant, day=day)
        if run.finished_at is None or run.error:
            run_ids.append(run.pk)
    return run_ids


def reconcile_day(merchant_number: str, day: date) -> ReconciliationRun:
    """Reconcile (again) one merchant's day now: `manage.py reconcile`, *Run again*."""
    run, _ = ReconciliationRun.objects.get_or_create(merchant_number=merchant_number, day=day)
    reconcile(run.pk)
    return ReconciliationRun.objects.get(pk=run.pk)


def reconcile(run_id: int) -> str:
    run = ReconciliationRun.objects.get(pk=run_id)
    locations = list(Location.objects.filter(merchant_number=run.merchant_number).order_by("code"))
    if not locations:
        return _failed(run, "No location uses this merchant number any more.")
    # The merchant's credentials: those of its first live location (they share one account).
    owner = next((loc for loc in locations if loc.mode == Location.Mode.LIVE), locations[0])
    lender_name = partners.lender_name(owner)
    try:
        report = partners.lender_for(owner).settlement_report(run.merchant_number, run.day)
    except PartnerError as exc:
        return _failed(run, f"{lender_name} could not give the settlement report of {display.day(run.day)}: {exc}")
    try:
        items = _Matcher(run, locations, owner, lender_name).match(report.lines)
    except PartnerError as exc:
        return _failed(run, str(exc))
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run_id)
        kept = {
            _key(item): item
            for item in run.items.exclude(resolved_at=None)
        }
        run.items.all().delete()
        for item in items:
            earlier = kept.get(_key(item))
            if earlier is not None and item.outcome != Outcome.MATCHED:
                item.resolved_at, item.resolved_by_id, item.resolution = earlier.resolved_at, earlier.resolved_by_id, earlier.resolution
            item.run = run
        ReconciliationItem.objects.bulk_create(items)
        run.purchases, run.refunds, run.fees, run.net = report.purchases, report.refunds, report.fees, report.net
        run.error, run.finished_at = "", timezone.now()
        run.save(update_fields=["purchases", "refunds", "fees", "net", "error", "finished_at"])
    exceptions = sum(1 for item in items if item.outcome != Outcome.MATCHED)
    log.info("reconciliation %s %s: %s line(s), %s exception(s)", _masked(run.merchant_number), run.day, len(items), exceptions)
    return f"{len(items)} items, {exceptions} exceptions"


def _failed(run: ReconciliationRun, error: str) -> str:
    # The items of an earlier good run stay; the error says this attempt failed.
    ReconciliationRun.objects.filter(pk=run.pk).update(error=error, finished_at=timezone.now())
    log.warning("reconciliation %s %s failed: %s", _masked(run.merchant_number), run.day, error)
    return "error"


def _masked(merchant_number: str) -> str:
    return f"…{merchant_number[-4:]}"


def _key(item: ReconciliationItem) -> tuple:
    """An exception is the same exception when it is about the same transaction, with the
    same outcome and the same amounts on each side."""
    return (
        item.outcome, item.transaction_kind, item.lender_transaction_id, item.case_id,
        item.lender_amount, item.lender_fee, item.ledger_amount, item.ledger_fee,
    )


# --- the matching ------------------------------------------------------------------------------


@dataclass
class _Expected:
    """One ledger entry a settled transaction calls for."""

    label: str  # "the CareCredit payment"
    marker: str
    amount: Decimal  # as the ledger shows it
    posting: LedgerPosting | None


class _Matcher:
    def __init__(self, run, locations, owner, lender_name):
        self.run, self.locations, self.owner, self.lender = run, locations, owner, lender_name
        self.location_ids = [loc.pk for loc in locations]
        self._entries: dict[int, list[LedgerEntry]] = {}  # case id → its patient's ledger entries

    def match(self, lines: tuple[SettlementLine, ...]) -> list[ReconciliationItem]:
        items = []
        seen_purchases, seen_refunds = set(), set()
        for line in lines:
            if line.kind == TransactionKind.PURCHASE:
                purchase = self._purchase_for(line)
                if purchase is not None:
                    seen_purchases.add(purchase.pk)
                items.append(self._purchase_item(line, purchase))
            else:
                refund = self._refund_for(line)
                if refund is not None:
                    seen_refunds.add(refund.pk)
                items.append(self._refund_item(line, refund))
        items.extend(self._missing_at_lender(seen_purchases, seen_refunds))
        return items

    # Chairside's side of a line.

    def _purchase_for(self, line: SettlementLine) -> Purchase | None:
        purchases = Purchase.objects.filter(case__location_id__in=self.location_ids).select_related("case", "case__location")
        return (
            purchases.filter(lender_transaction_id=line.transaction_id).first()
            or purchases.filter(case__reference=line.reference).first()
        )

    def _refund_for(self, line: SettlementLine) -> Refund | None:
        refunds = Refund.objects.filter(case__location_id__in=self.location_ids).select_related("case", "case__location", "purchase")
        return refunds.filter(lender_transaction_id=line.transaction_id).first()

    def _item(self, case, kind, outcome, detail, **amounts) -> ReconciliationItem:
        location = case.location if case is not None else self.owner
        return ReconciliationItem(
            location=location, case=case, outcome=outcome, transaction_kind=kind, detail=detail, **amounts
        )

    # Purchases.

    def _purchase_item(self, line: SettlementLine, purchase: Purchase | None) -> ReconciliationItem:
        lender_side = {"lender_transaction_id": line.transaction_id, "lender_amount": line.amount, "lender_fee": line.fee}
        what = f"{self.lender}'s purchase of {display.money(line.amount)} (reference {line.reference or 'none'})"
        if purchase is None:
            return self._item(
                None, TransactionKind.PURCHASE, Outcome.MISSING_IN_PMS,
                f"{what} matches no Chairside case: it was charged outside Chairside, so nothing was posted "
                f"to the ledger for it. Post it by hand, then mark this resolved.",
                **lender_side,
            )
        case = purchase.case
        expected = [_Expected(f"the {self.lender} payment", posting_marker(case.reference, "payment"), line.net,
                              _posting(case, LedgerPosting.Kind.PAYMENT))]
        if line.fee:
            expected.append(_Expected("the merchant fee adjustment", posting_marker(case.reference, "merchant_fee"), -line.fee,
                                      _posting(case, LedgerPosting.Kind.MERCHANT_FEE)))
        found = self._found(case, expected)
        ledger_side = _ledger_side(found, expected)
        what = f"{self.lender}'s purchase of {display.money(line.amount)} for case {case.reference}"
        if purchase.amount != line.amount or purchase.merchant_fee != line.fee:
            parts = []
            if purchase.amount != line.amount:
                parts.append(f"Chairside charged {display.money(purchase.amount)}, {self.lender} settled {display.money(line.amount)}")
            if purchase.merchant_fee != line.fee:
                parts.append(
                    f"{self.lender} kept a fee of {display.money(line.fee)}, Chairside computed {display.money(purchase.merchant_fee)} "
                    f"({purchase.fee_rate:.2f}% in the template): check the template's rate against the "
                    f"{self.lender} agreement"
                )
            return self._item(case, TransactionKind.PURCHASE, Outcome.AMOUNT_DIFFERS, f"{what}: {'; '.join(parts)}.",
                              **lender_side, **ledger_side)
        missing = [e for e in expected if found[e.marker] is None]
        if missing:
            return self._item(case, TransactionKind.PURCHASE, Outcome.MISSING_IN_PMS,
                              f"{what}: {_missing_words(missing, case)}.", **lender_side, **ledger_side)
        differing = [e for e in expected if found[e.marker].amount != e.amount]
        if differing:
            return self._item(case, TransactionKind.PURCHASE, Outcome.AMOUNT_DIFFERS,
                              f"{what}: {_differing_words(differing, found, case)}.", **lender_side, **ledger_side)
        return self._item(case, TransactionKind.PURCHASE, Outcome.MATCHED,
                          f"{what}: payment of {display.money(line.net)} and fee of {display.money(line.fee)} on the ledger.",
                          **lender_side, **ledger_side)

    # Refunds.

    def _refund_item(self, line: SettlementLine, refund: Refund | None) -> ReconciliationItem:
        lender_side = {"lender_transaction_id": line.transaction_id, "lender_amount": line.amount, "lender_fee": line.fee}
        if refund is None:
            return self._item(
                None, TransactionKind.REFUND, Outcome.MISSING_IN_PMS,
                f"{self.lender}'s refund of {display.money(line.amount)} (reference {line.reference or 'none'}) matches no "
                f"Chairside refund: it was made outside Chairside, so no refund adjustment was posted for it. Post it by hand, "
                f"then mark this resolved.",
                **lender_side,
            )
        case = refund.case
        expected = [_Expected("the refund adjustment", _refund_marker(refund), line.amount, _refund_posting(refund))]
        found = self._found(case, expected)
        ledger_side = _ledger_side(found, expected, refund=True)
        what = f"{self.lender}'s refund of {display.money(line.amount)} for case {case.reference}"
        if refund.amount != line.amount:
            return self._item(case, TransactionKind.REFUND, Outcome.AMOUNT_DIFFERS,
                              f"{what}: Chairside asked for {display.money(refund.amount)}.", **lender_side, **ledger_side)
        if found[expected[0].marker] is None:
            return self._item(case, TransactionKind.REFUND, Outcome.MISSING_IN_PMS,
                              f"{what}: {_missing_words(expected, case)}.", **lender_side, **ledger_side)
        if found[expected[0].marker].amount != line.amount:
            return self._item(case, TransactionKind.REFUND, Outcome.AMOUNT_DIFFERS,
                              f"{what}: {_differing_words(expected, found, case)}.", **lender_side, **ledger_side)
        return self._item(case, TransactionKind.REFUND, Outcome.MATCHED,
                          f"{what}: refund adjustment of {display.money(line.amount)} on the ledger.", **lender_side, **ledger_side)

    # Ours, absent from the report.

    def _missing_at_lender(self, seen_purchases, seen_refunds) -> list[ReconciliationItem]:
        items = []
        purchases = (
            Purchase.objects.filter(
                case__location_id__in=self.location_ids, status=Purchase.Status.SETTLED, business_day=self.run.day
            )
            .exclude(pk__in=seen_purchases)
            .select_related("case", "case__location")
            .order_by("pk")
        )
        for purchase in purchases:
            case = purchase.case
            items.append(self._item(
                case, TransactionKind.PURCHASE, Outcome.MISSING_AT_LENDER,
                f"Chairside charged {display.money(purchase.amount)} to {self.lender} for case {case.reference} on "
                f"{display.day(self.run.day)} (transaction {purchase.lender_transaction_id or 'unknown'}), but "
                f"{self.lender}'s settlement report of that day does not have it: ask {self.lender} whether it was funded.",
                lender_transaction_id=purchase.lender_transaction_id, ledger_amount=purchase.amount, ledger_fee=purchase.merchant_fee,
            ))
        # A refund's business day is the lender's date when it was made.
        start = datetime.combine(self.run.day, datetime.min.time(), tzinfo=LENDER_ZONE)
        refunds = (
            Refund.objects.filter(
                case__location_id__in=self.location_ids, status=Refund.Status.REFUNDED,
                refunded_at__gte=start, refunded_at__lt=start + timedelta(days=1),
            )
            .exclude(pk__in=seen_refunds)
            .select_related("case", "case__location")
            .order_by("pk")
        )
        for refund in refunds:
            case = refund.case
            items.append(self._item(
                case, TransactionKind.REFUND, Outcome.MISSING_AT_LENDER,
                f"Chairside refunded {display.money(refund.amount)} through {self.lender} for case {case.reference} on "
                f"{display.day(self.run.day)}, but {self.lender}'s settlement report of that day does not have it: "
                f"ask {self.lender} whether it was made.",
                lender_transaction_id=refund.lender_transaction_id, ledger_amount=refund.amount, ledger_fee=ZERO,
            ))
        return items

    # The PMS's side.

    def _found(self, case: FinancedCase, expected: list[_Expected]) -> dict[str, LedgerEntry | None]:
        if case.pk not in self._entries:
            try:
                self._entries[case.pk] = partners.pms_for(case.location).list_ledger_entries(case.patient_id)
            except PartnerError as exc:
                raise type(exc)(
                    f"{partners.pms_name(case.location)} could not show the ledger of case {case.reference}: {exc}"
                ) from exc
        entries = self._entries[case.pk]
        return {e.marker: find_by_marker(entries, e.marker) for e in expected}


def _posting(case: FinancedCase, kind: str) -> LedgerPosting | None:
    return LedgerPosting.objects.filter(case=case, kind=kind, refund=None).first()


def _refund_posting(refund: Refund) -> LedgerPosting | None:
    return LedgerPosting.objects.filter(refund=refund).first()


def _refund_marker(refund: Refund) -> str:
    posting = _refund_posting(refund)
    if posting is not None:
        return posting.marker
    # Not posted yet: its marker follows the refund's number, as its idempotency key does
    # (f"{reference}-refund-{n}").
    number = refund.idempotency_key.rsplit("-", 1)[-1]
    return posting_marker(refund.case.reference, "refund", int(number) if number.isdigit() else None)


def _ledger_side(found: dict, expected: list[_Expected], *, refund: bool = False) -> dict:
    """What the ledger shows, in the report's terms: the gross (payment + fee) and the fee of
    a purchase; the amount of a refund. None where nothing is on the ledger."""
    entries = [found[e.marker] for e in expected]
    if all(entry is None for entry in entries):
        return {"ledger_amount": None, "ledger_fee": None}
    if refund:
        return {"ledger_amount": entries[0].amount, "ledger_fee": ZERO}
    payment = entries[0].amount if entries[0] is not None else ZERO
    fee = -entries[1].amount if len(entries) > 1 and entries[1] is not None else ZERO
    return {"ledger_amount": payment + fee, "ledger_fee": fee}


def _missing_words(missing: list[_Expected], case: FinancedCase) -> str:
    pms = partners.pms_name(case.location)
    parts = []
    for e in missing:
        if e.posting is None or e.posting.write_status != WriteStatus.WRITTEN:
            parts.append(f"{e.label} of {display.money(e.amount)} was never posted by Chairside")
        else:
            parts.append(f"{e.label} of {display.money(e.amount)} that Chairside posted is no longer on the ledger")
    return f"{'; '.join(parts)} ({pms})"


def _differing_words(differing: list[_Expected], found: dict, case: FinancedCase) -> str:
    pms = partners.pms_name(case.location)
    return "; ".join(
        f"{pms} shows {e.label} as {display.money(found[e.marker].amount)}, it should be {display.money(e.amount)}"
        for e in differing
    )


# --- the clerk's actions -----------------------------------------------------------------------


def post_missing_entries(item_id: int, *, actor=None) -> str:
    """*Post the missing entries* of a missing-in-the-PMS exception: the case's posting step
    runs again. A case still charged-but-not-posted (or stopped there) is sent back to its
    step, which finds by marker what is already on the ledger and posts the rest; a case past
    it gets the entries the ledger lacks posted again, each once (repost_missing)."""
    from . import resume_case

    item = ReconciliationItem.objects.select_related("case", "run").get(pk=item_id)
    if item.outcome != Outcome.MISSING_IN_PMS or item.case is None:
        raise ReconciliationError("Only an entry missing in the PMS for a Chairside case can be posted from here.")
    case = item.case
    if case.state == CaseState.NEEDS_ATTENTION and case.resume_state == CaseState.PURCHASED:
        resume_case(case.pk, actor=actor)
        return "The case's posting step runs again: the entries appear on the ledger within a minute."
    if case.state == CaseState.PURCHASED:
        from .sweeps import redrive

        redrive(case.pk)
        return "The case's posting step runs again: the entries appear on the ledger within a minute."
    posted = repost_missing(case.pk)
    return f"Posted {posted} missing entr{'y' if posted == 1 else 'ies'} to the ledger."


def repost_missing(case_id: int) -> int:
    """Post again, once each, the written postings of a case past its posting step that the
    ledger no longer shows, through the one posting writer (posting.post_once: lookup by
    marker, UNKNOWN before the POST, read back). A compare-and-set on the posting's status
    first, so two clicks never post it twice. Returns how many were posted."""
    from .posting import PostingDiffers, post_once

    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    entries = partners.pms_for(case.location).list_ledger_entries(case.patient_id)
    posted = 0
    for row in LedgerPosting.objects.filter(case=case).order_by("pk"):
        if find_by_marker(entries, row.marker) is not None:
            continue
        # Written once, gone from the ledger since: sent again as a posting whose fate is
        # unknown (post_once looks it up first, then writes it).
        claimed = LedgerPosting.objects.filter(pk=row.pk, write_status=row.write_status, write_attempts=row.write_attempts).update(
            write_status=WriteStatus.UNKNOWN, pms_entry_id=""
        )
        if not claimed:
            continue  # someone else is posting it now
        row.refresh_from_db()
        try:
            post_once(case, row)
        except PostingDiffers as exc:
            raise ReconciliationError(f"{partners.pms_name(case.location)} stored it differently: {exc}") from exc
        posted += 1
    return posted


def resolve(item_id: int, *, note: str, actor=None) -> ReconciliationItem:
    note = (note or "").strip()
    if not note:
        raise ReconciliationError("Say what was done about it: a note is required to mark it resolved.")
    with transaction.atomic():
        item = ReconciliationItem.objects.select_for_update().get(pk=item_id)
        if item.outcome == Outcome.MATCHED:
            raise ReconciliationError("A matched line needs no resolution.")
        if item.resolved_at is not None:
            raise ReconciliationError("It is already resolved.")
        item.resolved_at, item.resolved_by, item.resolution = timezone.now(), actor, note
        item.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    return item
