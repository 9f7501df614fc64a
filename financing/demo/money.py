"""The money in the demo: the example merchant fee rates, and the history of the demo
locations that record CareCredit as a payment (`recording = payment`, seed_demo's overrides).

At each such location, cases as the flow leaves them (docs/money.md):

- `POSTED` cases charged to CareCredit once their treatment was posted, the payment (net)
  and the merchant fee (−fee) on the ledger, the ledger note, completed; where the location
  carries the rest of a partial approval in house, one of them with its in-house arrangement;
- one of those later refunded in part (the refund adjustment on the ledger);
- one approved case still waiting for its treatment to be posted (nothing charged yet);
- live work of the last hours: one charged whose payment is not posted yet, one posted whose
  ledger note is not (the worker takes them up; the sandboxes do not know these patients);
- one approval that expired unused before the treatment was posted (reported, not dropped);
- a case stopped for each reason only the money gives (`STOPS`, shared out among them: no fee
  rate, a purchase declined or refused, nothing settled to post, a posting refused or stored
  differently), each as far as the flow got;
- a reconciliation run per merchant and lender day read by now, every line matched.

They are drawn from their own random stream, so the rest of the history is the same whether
or not such a location exists (the same seed, the same cases).
"""

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP
from zoneinfo import ZoneInfo

from django.utils import timezone

from .. import display, partners, reasons
from ..markers import posting_marker
from ..models import (
    CaseState,
    LedgerPosting,
    Location,
    Purchase,
    ReconciliationItem,
    ReconciliationRun,
    Recording,
    Refund,
    Shortfall,
    WriteStatus,
    effective_template,
)
from ..ports import LedgerEntryKind, TransactionKind
from ..services.posting import KIND_WORDS
from ..services.purchase import purchase_values
from ..services.remainder import prepare_in_house
from .cases import DAY_CLOSES, DAY_OPENS, Built, Event, Spec, number, record_approval, record_note
from .production import until_waiting
from .plans import CENT, D, approved_amount, draw_plan, fit_promotion, offers_for

# Example merchant fee rates, percent of the purchase, per promotion: what the demo's group
# template holds and the CareCredit sandbox's default merchant agreement charges. A real
# group fills in its own CareCredit agreement's rates: these are examples, and every page that
# shows them says so (EXAMPLE_LABEL).
EXAMPLE_FEE_RATES = {
    "deferred_6": "5.90",
    "deferred_12": "9.90",
    "deferred_18": "12.90",
    "deferred_24": "14.90",
    "reduced_apr_24": "6.90",
    "reduced_apr_36": "7.90",
    "reduced_apr_48": "8.90",
    "reduced_apr_60": "9.90",
}
EXAMPLE_LABEL = "example rates — fill in your own CareCredit agreement's"

# The lender's business day is its own date in New York (Synchrony is in Stamford, CT).
LENDER_ZONE = ZoneInfo("America/New_York")
POSTED = 6
# The reasons only a location recording CareCredit as a payment gives, one case each, and the
# state each stops in (what the case resumes to).
STOPS = {
    "no_fee_rate": CaseState.APPROVED,
    "purchase_declined": CaseState.APPROVED,
    "purchase_refused": CaseState.APPROVED,
    "purchase_not_settled": CaseState.PURCHASED,
    "posting_refused": CaseState.PURCHASED,
    "posting_differs": CaseState.PURCHASED,
}
FIRST_NUMBER = 3000  # the patients' numbers (their ids follow): far from the rest of the history's
PER_LOCATION = 100
APPROVAL_DAYS = 30
READ_AT = time(6, 0)  # a day's settlement report is read the next morning, the lender's time  # the sandbox's (and CareCredit's usual) approval window


def is_example(rates: dict | None) -> bool:
    """Whether a template's rate table is still the demo's example table."""
    return {k: str(v) for k, v in (rates or {}).items()} == EXAMPLE_FEE_RATES


def locations(candidates) -> list[Location]:
    """The live demo locations among `candidates` that record CareCredit as a payment."""
    return sorted(
        (loc for loc in candidates if loc.mode == Location.Mode.LIVE and loc.pms_kind in partners.PMS_IMPLEMENTATIONS
         and effective_template(loc).recording == Recording.PAYMENT),
        key=lambda loc: loc.code,
    )


def draw(rng, paying: list[Location]) -> list[Spec]:
    specs = []
    for index, location in enumerate(paying):
        n = FIRST_NUMBER + index * PER_LOCATION
        in_house = effective_template(location).shortfall == Shortfall.IN_HOUSE
        flavours = ["posted"] * POSTED + ["waiting", "expired_unused", "purchased", "on_ledger"]
        flavours += [f"stop:{kind}" for i, kind in enumerate(STOPS) if i % len(paying) == index]
        for i, flavour in enumerate(flavours):
            plan = draw_plan(rng, n, minor_share=0)
            for j, procedure in enumerate(plan.procedures):  # as the PMS ids them
                procedure["procedure_id"] = str(95001 + n * 10 + j)
            spec = Spec(location, f"money:{flavour}", plan, minute=rng.randint(DAY_OPENS, DAY_CLOSES))
            spec.extra.update(
                correction=None, wait_days=rng.uniform(1, 12),
                partial=flavour == "posted" and i == 1,  # a partial approval (in house where the location carries it)
                in_house=in_house and flavour == "posted" and i == 1,
                refund=flavour == "posted" and i == 2,
                refund_days=rng.uniform(3, 10),
            )
            if flavour == "posted":
                spec.week, spec.day = rng.randint(2, 9), rng.randint(0, 5)
            elif flavour == "waiting":
                spec.days_ago = rng.randint(2, 8)
            elif flavour in ("purchased", "on_ledger"):  # this afternoon: the lender's day is not reconciled yet
                spec.extra.update(minutes_ago=rng.randint(150, 200), wait_days=rng.uniform(0.02, 0.05))
            elif flavour.startswith("stop:"):
                spec.days_ago, spec.extra["stop_minutes"] = rng.randint(1, 6), rng.uniform(1, 30)
            else:  # approved long enough ago that the approval has lapsed
                spec.days_ago = APPROVAL_DAYS + rng.randint(6, 20)
            specs.append(spec)
            n += 1
    return specs


def path(spec: Spec, t0: datetime, lender: str, people: dict) -> list[Event]:
    t, pms = spec.timing, partners.pms_name(spec.location)
    events = until_waiting(spec, t0, people, reasons.waiting_to_charge(pms))
    decided, awaited = events[2].at, events[3].at
    flavour = spec.flavour.removeprefix("money:")
    if flavour == "waiting":
        return events
    if flavour == "expired_unused":
        expires_on = _expires_on(decided)
        # The sweep's first tick after the lender's last day, on the location's clock.
        lapsed = datetime.combine(expires_on + timedelta(days=1), time(0, 5), tzinfo=ZoneInfo(spec.location.timezone))
        return [*events, Event(CaseState.EXPIRED, lapsed, expired_unused(lender, expires_on))]
    posted = awaited + timedelta(days=spec.extra["wait_days"])
    purchased = posted + timedelta(seconds=t["send"])
    on_ledger = purchased + timedelta(seconds=t["write"])
    events.append(Event(CaseState.APPROVED, posted, reasons.posted_to_charge(pms)))
    if flavour.startswith("stop:") and STOPS[flavour[5:]] == CaseState.APPROVED:
        return [*events, Event(CaseState.NEEDS_ATTENTION, posted + timedelta(seconds=t["send"]))]
    events.append(Event(CaseState.PURCHASED, purchased))  # its words, with the amount charged: finish
    if flavour.startswith("stop:"):
        return [*events, Event(CaseState.NEEDS_ATTENTION, on_ledger)]
    if flavour == "purchased":
        return events
    events.append(Event(CaseState.POSTED, on_ledger))
    if flavour == "on_ledger":
        return events
    return [*events, Event(CaseState.COMPLETED, on_ledger + timedelta(seconds=t["note"]))]


def expired_unused(lender: str, expires_on: date) -> str:
    """The reason an approval lapsed unused, in the sweep's words."""
    return reasons.approval_expired_unused(lender, display.day(expires_on))


def _expires_on(decided: datetime) -> date:
    return decided.astimezone(LENDER_ZONE).date() + timedelta(days=APPROVAL_DAYS)


def finish(built: Built, now: datetime):
    """The records the flow kept: the decision with its expiry; once charged, the purchase, the
    postings, the note (and the in-house arrangement, a refund where drawn)."""
    spec, case, plan = built.spec, built.case, built.spec.plan
    case.recording = Recording.PAYMENT
    decided = next(e.at for e in built.events if e.state == CaseState.APPROVED)
    amount = approved_amount(plan, partial=spec.extra["partial"])
    fit_promotion(plan, amount)
    case.promotion = plan.promotion
    record_approval(built, decided, amount, offers_for(amount))
    built.decision.expires_on = _expires_on(decided)
    if spec.flavour.endswith(":expired_unused"):
        built.notify.append(("approval_expired", case.state_changed_at))  # billing is told, once
    if spec.flavour.endswith((":waiting", ":expired_unused")):
        return
    if ":stop:" in spec.flavour:
        _stopped(built, spec.flavour.split(":stop:")[1])
        return
    template = effective_template(case.location)
    purchased_at = next(e.at for e in built.events if e.state == CaseState.PURCHASED)
    posted_at = next((e.at for e in built.events if e.state == CaseState.POSTED), None)
    values = purchase_values(case)  # the purchase step's own amounts: gross, rate, fee, net
    rate, merchant_fee = values["fee_rate"], values["merchant_fee"]
    gross = values["amount"]
    k = number(plan)
    purchase = Purchase(
        case=case, idempotency_key=f"{case.reference}-purchase", amount=gross, promotion=case.promotion, fee_rate=rate,
        merchant_fee=merchant_fee, net_amount=gross - merchant_fee, status=Purchase.Status.SETTLED, attempts=1,
        lender_transaction_id=f"txn_{k:08d}", authorization_code=f"{(k * 7919) % 1000000:06d}",
        business_day=purchased_at.astimezone(LENDER_ZONE).date(), charged_at=purchased_at,
    )
    purchase.created_at = purchased_at - timedelta(milliseconds=300)
    built.purchase = case.purchase = purchase
    _charged_reason(built, gross)
    if posted_at is None:
        return  # charged minutes ago: the posting step has not run yet
    day = timezone.localdate(posted_at, ZoneInfo(case.location.timezone))
    built.postings = [
        _posting(case, LedgerPosting.Kind.PAYMENT, LedgerEntryKind.PAYMENT, template.payment_type, gross - merchant_fee, day,
                 posted_at, 100 + k),
        _posting(case, LedgerPosting.Kind.MERCHANT_FEE, LedgerEntryKind.ADJUSTMENT, template.fee_adjustment_type, -merchant_fee,
                 day, posted_at, 200 + k),
    ]
    if spec.extra["in_house"]:
        _in_house(built, posted_at)
    if spec.extra["refund"]:
        _refund(built, template, now)
    if case.state != CaseState.COMPLETED:
        return  # posted minutes ago: the note and the confirmation come next
    record_note(built, case.completed_at, WriteStatus.WRITTEN)  # the note and the confirmation as the flow words them
    built.notify.append(("approved", case.completed_at))


def _charged_reason(built: Built, gross):
    """The purchase step's words on PURCHASED, with the amount it charged."""
    charged = next(e for e in built.events if e.state == CaseState.PURCHASED)
    charged.reason = reasons.charged(partners.lender_name(built.case.location), gross)
    if built.case.state == CaseState.PURCHASED:
        built.case.state_reason = charged.reason


def _stopped(built: Built, kind: str):
    """A case stopped for a money reason, with what the flow kept by then."""
    case, plan = built.case, built.spec.plan
    lender, pms = partners.lender_name(case.location), partners.pms_name(case.location)
    values = purchase_values(case)
    k = number(plan)
    if kind == "no_fee_rate":
        # The promotion's rate is missing from the table: nothing is charged.
        reason = reasons.no_fee_rate(case.get_promotion_display())
    elif kind == "purchase_declined":
        reason = reasons.purchase_declined(lender, values["amount"], "the account is closed")
        built.purchase = Purchase(case=case, idempotency_key=f"{case.reference}-purchase", status=Purchase.Status.DECLINED,
                                  attempts=1, decline_reason="the account is closed", lender_transaction_id=f"txn_{k:08d}", **values)
    elif kind == "purchase_refused":
        reason = reasons.purchase_refused(lender, values["amount"], "the merchant number is not enrolled for this promotion")
    else:
        at = built.events[-1].at
        status = Purchase.Status.VOIDED if kind == "purchase_not_settled" else Purchase.Status.SETTLED
        built.purchase = Purchase(
            case=case, idempotency_key=f"{case.reference}-purchase", status=status, attempts=1,
            lender_transaction_id=f"txn_{k:08d}", authorization_code=f"{(k * 7919) % 1000000:06d}",
            business_day=at.astimezone(LENDER_ZONE).date(), charged_at=at - timedelta(seconds=20), **values,
        )
        if kind == "purchase_not_settled":
            reason = reasons.purchase_not_settled(lender)
        elif kind == "posting_refused":
            reason = reasons.posting_refused(pms, "payment", f"{pms} has no payment type named CareCredit Payment (HTTP 422)")
        else:
            reason = reasons.posting_differs(pms, f"the payment is {display.money(values['net_amount'] - 10)}, "
                                                  f"Chairside sent {display.money(values['net_amount'])}")
    if any(e.state == CaseState.PURCHASED for e in built.events):
        _charged_reason(built, values["amount"])
    if built.purchase is not None:
        built.purchase.created_at = built.events[-1].at - timedelta(seconds=25)
    built.events[-1].reason = case.state_reason = reason
    built.notify.append(("needs_attention", built.events[-1].at))


def _posting(case, kind, entry_kind, type_name, amount, day, at, entry_id, n=None, refund=None) -> LedgerPosting:
    """A posting as posting.prepare_posting words it, written."""
    marker = posting_marker(case.reference, kind, n)
    note = f"{marker} {partners.lender_name(case.location)} {KIND_WORDS[kind]} {case.reference}"[:255]
    return LedgerPosting(
        case=case, refund=refund, kind=kind, entry_kind=entry_kind, type_name=type_name, amount=amount, entry_date=day,
        marker=marker, note=note, pms_entry_id=str(entry_id), write_status=WriteStatus.WRITTEN, write_attempts=1, written_at=at,
    )


def _in_house(built: Built, at: datetime):
    """The practice's own plan for what CareCredit did not approve (the remainder's terms)."""
    arrangement = prepare_in_house(built.case, now=at - timedelta(seconds=2))
    arrangement.case = built.case
    arrangement.write_status, arrangement.write_attempts = WriteStatus.WRITTEN, 1
    arrangement.pms_arrangement_id = str(70001 + number(built.spec.plan))
    arrangement.written_at = arrangement.verified_at = at
    built.arrangement, built.arrangement_at = arrangement, at - timedelta(seconds=1)
    built.case.arrangement = arrangement


def _refund(built: Built, template, now: datetime):
    """Part of the treatment was not done: billing gave back its share, some days later."""
    case, purchase = built.case, built.purchase
    amount = min(D(built.spec.plan.procedures[-1]["fee"]), purchase.amount)
    if len(built.spec.plan.procedures) == 1:
        amount = (purchase.amount * D("0.20")).quantize(CENT, rounding=ROUND_HALF_UP)
    at = min(case.completed_at + timedelta(days=built.spec.extra["refund_days"]), now - timedelta(hours=2))
    k = number(built.spec.plan)
    refund = Refund(
        case=case, purchase=purchase, idempotency_key=f"{case.reference}-refund-1", amount=amount,
        why="A procedure on the plan was not done.", status=Refund.Status.REFUNDED, attempts=1,
        lender_transaction_id=f"txn_{k:08d}r1", refunded_at=at,
    )
    refund.requested_at = at - timedelta(seconds=2)
    built.refunds = [refund]
    day = timezone.localdate(at, ZoneInfo(case.location.timezone))
    built.postings.append(
        _posting(case, LedgerPosting.Kind.REFUND, LedgerEntryKind.ADJUSTMENT, template.refund_adjustment_type, amount, day,
                 at + timedelta(seconds=3), 300 + k, n=1, refund=refund)
    )


# --- writing (after the cases) -----------------------------------------------------------------


def write(built: list[Built], now: datetime):
    """The purchases, refunds and postings, and the reconciliation of each lender day."""
    mine = [b for b in built if b.purchase is not None]
    for b in mine:
        b.purchase.case_id = b.case.pk
    _keeping(Purchase, [b.purchase for b in mine], ["created_at"])
    refunds = []
    for b in mine:
        for r in b.refunds:
            r.case_id, r.purchase_id = b.case.pk, b.purchase.pk
            refunds.append(r)
    _keeping(Refund, refunds, ["requested_at"])
    postings = []
    for b in mine:
        for p in b.postings:
            p.case_id = b.case.pk
            p.refund_id = p.refund.pk if p.refund is not None else None
            postings.append(p)
    LedgerPosting.objects.bulk_create(postings)
    for model, rows, at in (
        (Purchase, [b.purchase for b in mine], lambda r: r.charged_at or r.created_at),
        (Refund, refunds, lambda r: r.refunded_at),
        (LedgerPosting, postings, lambda r: r.written_at),
    ):
        History = model.history.model
        fields = [f.attname for f in model._meta.fields]
        History.objects.bulk_create(
            [History(**{name: getattr(r, name) for name in fields}, history_date=at(r), history_type="+") for r in rows]
        )
    _reconciled(mine, now)


def _keeping(model, rows, stamped):
    kept = [[getattr(row, name) for name in stamped] for row in rows]
    model.objects.bulk_create(rows)
    for row, values in zip(rows, kept):
        for name, value in zip(stamped, values):
            setattr(row, name, value)
    if rows:
        model.objects.bulk_update(rows, stamped)


def _reconciled(mine: list[Built], now: datetime):
    """Each merchant's settled days, read the next morning and matched line by line."""
    days: dict[tuple[str, date], list] = {}
    for b in mine:
        if b.case.state not in (CaseState.COMPLETED, CaseState.POSTED, CaseState.PURCHASED):
            continue  # stopped before anything was settled, or with the posting at fault: live work
        merchant = b.case.location.merchant_number
        days.setdefault((merchant, b.purchase.business_day), []).append(("purchase", b, b.purchase))
        for r in b.refunds:
            days.setdefault((merchant, r.refunded_at.astimezone(LENDER_ZONE).date()), []).append(("refund", b, r))
    for (merchant, day), lines in sorted(days.items()):
        read_at = datetime.combine(day + timedelta(days=1), READ_AT, tzinfo=LENDER_ZONE)
        if read_at > now:
            continue  # the day's report is read the next morning
        run = ReconciliationRun.objects.create(merchant_number=merchant, day=day)
        items = []
        for kind, b, txn in lines:
            lender = partners.lender_name(b.case.location)
            if kind == "purchase":
                fee_, payment = txn.merchant_fee, next(p for p in b.postings if p.kind == LedgerPosting.Kind.PAYMENT)
                run.purchases += txn.amount
                run.fees += fee_
                run.net += txn.amount - fee_
                items.append(ReconciliationItem(
                    run=run, location=b.case.location, case=b.case, outcome=ReconciliationItem.Outcome.MATCHED,
                    transaction_kind=TransactionKind.PURCHASE, lender_transaction_id=txn.lender_transaction_id,
                    lender_amount=txn.amount, lender_fee=fee_, ledger_amount=payment.amount + fee_, ledger_fee=fee_,
                    detail=f"{lender}'s purchase of {display.money(txn.amount)} for case {b.case.reference}: payment of "
                           f"{display.money(txn.amount - fee_)} and fee of {display.money(fee_)} on the ledger.",
                ))
            else:
                run.refunds += txn.amount
                run.net -= txn.amount
                items.append(ReconciliationItem(
                    run=run, location=b.case.location, case=b.case, outcome=ReconciliationItem.Outcome.MATCHED,
                    transaction_kind=TransactionKind.REFUND, lender_transaction_id=txn.lender_transaction_id,
                    lender_amount=txn.amount, lender_fee=D("0.00"), ledger_amount=txn.amount, ledger_fee=D("0.00"),
                    detail=f"{lender}'s refund of {display.money(txn.amount)} for case {b.case.reference}: refund adjustment "
                           f"of {display.money(txn.amount)} on the ledger.",
                ))
        run.finished_at = read_at
        run.save()
        ReconciliationRun.objects.filter(pk=run.pk).update(started_at=read_at - timedelta(seconds=2))
        ReconciliationItem.objects.bulk_create(items)
