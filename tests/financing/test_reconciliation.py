"""Reconciliation (financing/services/reconciliation.py): a day's settlement report matched
against Chairside's purchases, refunds and postings, and against the PMS ledger.

The partners here answer through the port's own dataclasses (the lender's report, the
patient's ledger entries): the matching is what is under test. The same run over HTTP
against the sandboxes is test_reconciliation_sandboxes.py.
"""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command

from financing import partners
from financing.markers import posting_marker
from financing.models import CaseState, LedgerPosting, Location, Purchase, ReconciliationItem, ReconciliationRun, WriteStatus
from financing.ports import (
    LedgerEntry,
    LedgerEntryKind,
    SettlementLine,
    SettlementReport,
    TransactionKind,
    TransientPartnerError,
)
from financing.services import reconciliation
from tests.console.console_factories import plain_location
from tests.financing.recon_factories import NY, charged_case, refunded

D = Decimal
DAY = date(2026, 12, 3)
Outcome = ReconciliationItem.Outcome
pytestmark = pytest.mark.django_db


class FakeLender:
    def __init__(self):
        self.lines, self.error, self.asked = [], None, []

    def settlement_report(self, merchant_number, day):
        self.asked.append((merchant_number, day))
        if self.error:
            raise self.error
        return SettlementReport(merchant_number, day, tuple(self.lines))


class FakePMS:
    def __init__(self):
        self.entries, self.posted = {}, []

    def list_ledger_entries(self, patient_id):
        return list(self.entries.get(patient_id, []))

    def add(self, case, kind, amount, entry_kind=LedgerEntryKind.PAYMENT, number=None):
        marker = posting_marker(case.reference, kind, number)
        n = sum(len(v) for v in self.entries.values()) + 1
        self.entries.setdefault(case.patient_id, []).append(
            LedgerEntry(str(500 + n), entry_kind, case.patient_id, DAY, amount, "t", f"CareCredit {marker}")
        )

    def post_ledger_entry(self, request):
        self.posted.append(request)
        n = sum(len(v) for v in self.entries.values()) + 1
        entry = LedgerEntry(str(500 + n), request.kind, request.patient_id, request.entry_date, request.amount, request.type_name, request.note)
        self.entries.setdefault(request.patient_id, []).append(entry)
        return entry


@pytest.fixture
def world(template, monkeypatch):
    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Dental")
    lender, pms = FakeLender(), FakePMS()
    monkeypatch.setattr(partners, "lender_for", lambda location: lender)
    monkeypatch.setattr(partners, "pms_for", lambda location: pms)
    return {"main": main, "north": north, "lender": lender, "pms": pms}


def purchase_line(txn, case, gross, fee):
    return SettlementLine(txn, TransactionKind.PURCHASE, case.reference, gross, fee, gross - fee, "deferred_12")


def one_of_each(world):
    """A match, a refund matched, and one of each exception, all on DAY."""
    main, north, pms, lender = world["main"], world["north"], world["pms"], world["lender"]
    # Matched: $2,000.00 at 9.90% → fee $198.00, net $1,802.00, both on the ledger; a refund
    # of $250.00 with its adjustment.
    a, pa = charged_case(main, gross=D("2000.00"), day=DAY, txn="TXN-A")
    pms.add(a, "payment", D("1802.00"))
    pms.add(a, "merchant_fee", D("-198.00"), LedgerEntryKind.ADJUSTMENT)
    refunded(a, pa, amount=D("250.00"), day=DAY, txn="TXN-R")
    pms.add(a, "refund", D("250.00"), LedgerEntryKind.ADJUSTMENT, number=1)
    # Missing in the PMS: charged $1,500.00, never posted (the case stopped after the charge).
    b, _ = charged_case(north, gross=D("1500.00"), day=DAY, txn="TXN-B", state=CaseState.PURCHASED, post=())
    # Missing at the lender: charged $900.00 that day, not on the report.
    c, _ = charged_case(main, gross=D("900.00"), day=DAY, txn="TXN-C")
    pms.add(c, "payment", D("810.90"))
    pms.add(c, "merchant_fee", D("-89.10"), LedgerEntryKind.ADJUSTMENT)
    # Amount differs: the template says 9.90%, the lender's agreement 10.90%: $297.00 posted,
    # $327.00 kept.
    d, _ = charged_case(main, gross=D("3000.00"), day=DAY, txn="TXN-D")
    pms.add(d, "payment", D("2703.00"))
    pms.add(d, "merchant_fee", D("-297.00"), LedgerEntryKind.ADJUSTMENT)
    lender.lines = [
        purchase_line("TXN-A", a, D("2000.00"), D("198.00")),
        purchase_line("TXN-B", b, D("1500.00"), D("148.50")),
        purchase_line("TXN-D", d, D("3000.00"), D("327.00")),
        SettlementLine("TXN-R", TransactionKind.REFUND, a.reference, D("250.00"), D("0.00"), D("-250.00"), "deferred_12", "TXN-A"),
    ]
    return {"a": a, "b": b, "c": c, "d": d}


def test_a_day_with_one_match_and_one_of_each_exception(world):
    cases = one_of_each(world)
    run = reconciliation.reconcile_day(world["main"].merchant_number, DAY)

    assert world["lender"].asked == [("5348120000000001", DAY)]
    assert run.error == ""
    assert (run.purchases, run.refunds, run.fees, run.net) == (D("6500.00"), D("250.00"), D("673.50"), D("5576.50"))
    items = {(i.case.reference, i.transaction_kind): i for i in run.items.select_related("case")}
    assert len(items) == 5
    a, b, c, d = (cases[k].reference for k in "abcd")

    matched = items[(a, "purchase")]
    assert (matched.outcome, matched.lender_amount, matched.lender_fee, matched.ledger_amount, matched.ledger_fee) == (
        Outcome.MATCHED, D("2000.00"), D("198.00"), D("2000.00"), D("198.00"))
    refund = items[(a, "refund")]
    assert (refund.outcome, refund.lender_amount, refund.ledger_amount) == (Outcome.MATCHED, D("250.00"), D("250.00"))

    missing = items[(b, "purchase")]
    assert missing.outcome == Outcome.MISSING_IN_PMS
    assert missing.location == world["north"]
    assert (missing.lender_amount, missing.lender_fee, missing.ledger_amount, missing.ledger_fee) == (D("1500.00"), D("148.50"), None, None)
    assert missing.detail == (
        f"CareCredit's purchase of $1,500.00 for case {b}: the CareCredit payment of $1,351.50 was never posted by Chairside; "
        "the merchant fee adjustment of -$148.50 was never posted by Chairside (Dentrix)."
    )

    absent = items[(c, "purchase")]
    assert absent.outcome == Outcome.MISSING_AT_LENDER
    assert (absent.lender_transaction_id, absent.lender_amount, absent.ledger_amount, absent.ledger_fee) == ("TXN-C", None, D("900.00"), D("89.10"))
    assert "settlement report of that day does not have it" in absent.detail

    differs = items[(d, "purchase")]
    assert differs.outcome == Outcome.AMOUNT_DIFFERS
    assert (differs.lender_amount, differs.lender_fee, differs.ledger_amount, differs.ledger_fee) == (D("3000.00"), D("327.00"), D("3000.00"), D("297.00"))
    assert differs.detail == (
        f"CareCredit's purchase of $3,000.00 for case {d}: CareCredit kept a fee of $327.00, Chairside computed $297.00 "
        "(9.90% in the template): check the template's rate against the CareCredit agreement."
    )


def test_an_entry_removed_from_the_ledger_or_posted_with_another_amount(world):
    a, _ = charged_case(world["main"], gross=D("1000.00"), day=DAY, txn="TXN-1")
    b, _ = charged_case(world["main"], gross=D("1000.00"), day=DAY, txn="TXN-2")
    world["pms"].add(a, "payment", D("901.00"))  # its fee adjustment was deleted in the PMS
    world["pms"].add(b, "payment", D("910.00"))  # retyped by hand
    world["pms"].add(b, "merchant_fee", D("-99.00"), LedgerEntryKind.ADJUSTMENT)
    world["lender"].lines = [purchase_line("TXN-1", a, D("1000.00"), D("99.00")), purchase_line("TXN-2", b, D("1000.00"), D("99.00"))]
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    first, second = run.items.order_by("pk")
    assert first.outcome == Outcome.MISSING_IN_PMS
    assert "the merchant fee adjustment of -$99.00 that Chairside posted is no longer on the ledger (Dentrix)" in first.detail
    assert (first.ledger_amount, first.ledger_fee) == (D("901.00"), D("0.00"))
    assert second.outcome == Outcome.AMOUNT_DIFFERS
    assert "Dentrix shows the CareCredit payment as $910.00, it should be $901.00" in second.detail
    assert (second.ledger_amount, second.ledger_fee) == (D("1009.00"), D("99.00"))


def test_a_purchase_charged_outside_chairside_is_the_merchants_first_location(world):
    world["lender"].lines = [SettlementLine("TXN-X", TransactionKind.PURCHASE, "", D("500.00"), D("49.50"), D("450.50"), "deferred_12")]
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    (item,) = run.items.all()
    assert (item.outcome, item.case, item.location) == (Outcome.MISSING_IN_PMS, None, world["main"])
    assert "matches no Chairside case" in item.detail


def test_running_again_replaces_the_items_and_keeps_resolutions(world, django_user_model):
    one_of_each(world)
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    ann = django_user_model.objects.create(username="ann")
    differs = run.items.get(outcome=Outcome.AMOUNT_DIFFERS)
    reconciliation.resolve(differs.pk, note="Rate corrected to 10.90% in the template; fee adjusted by hand.", actor=ann)

    run = reconciliation.reconcile_day("5348120000000001", DAY)
    assert run.items.count() == 5  # replaced, not added
    again = run.items.get(outcome=Outcome.AMOUNT_DIFFERS)
    assert again.pk != differs.pk
    assert (again.resolved_by, again.resolution) == (ann, "Rate corrected to 10.90% in the template; fee adjusted by hand.")
    assert run.items.filter(resolved_at__isnull=False).count() == 1
    assert ReconciliationRun.objects.count() == 1


def test_resolving_needs_a_note(world):
    one_of_each(world)
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    item = run.items.get(outcome=Outcome.MISSING_AT_LENDER)
    with pytest.raises(reconciliation.ReconciliationError, match="a note is required"):
        reconciliation.resolve(item.pk, note="   ")
    item.refresh_from_db()
    assert item.resolved_at is None


def test_a_lender_error_is_recorded_and_the_run_tried_again(world):
    one_of_each(world)
    world["lender"].error = TransientPartnerError("CareCredit is not answering (503)")
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    assert run.error == "CareCredit could not give the settlement report of Dec 3, 2026: CareCredit is not answering (503)"
    assert run.items.count() == 0
    # Beat, the next morning's ticks: the failed run is handed out again until it succeeds.
    morning = datetime(2026, 12, 4, 7, 0, tzinfo=NY)
    assert reconciliation.runs_to_start(morning) == [run.pk]
    world["lender"].error = None
    assert reconciliation.reconcile(run.pk) == "5 items, 3 exceptions"
    assert reconciliation.runs_to_start(morning) == []


def test_beat_waits_for_the_hour_and_makes_one_run_per_live_merchant(world, settings, template):
    settings.RECONCILIATION_HOUR = 6
    plain_location(template, "south", merchant_number="5348120000000009", mode=Location.Mode.SHADOW)
    plain_location(template, "east", merchant_number="5348120000000007")
    assert reconciliation.runs_to_start(datetime(2026, 12, 4, 5, 59, tzinfo=NY)) == []
    assert ReconciliationRun.objects.count() == 0
    ids = reconciliation.runs_to_start(datetime(2026, 12, 4, 6, 0, tzinfo=NY))
    runs = ReconciliationRun.objects.filter(pk__in=ids).order_by("merchant_number")
    assert [(r.merchant_number, r.day) for r in runs] == [("5348120000000001", DAY), ("5348120000000007", DAY)]
    # The task hands each run to its own task, by id.
    from financing import tasks

    queued = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(tasks.reconcile_run, "delay", lambda run_id: queued.append(run_id))
    monkey.setattr(reconciliation, "runs_to_start", lambda: ids)
    try:
        assert tasks.reconcile_settlements() == 2
    finally:
        monkey.undo()
    assert queued == ids


def test_post_the_missing_entries_reposts_once_what_the_ledger_lost(world):
    a, _ = charged_case(world["main"], gross=D("1000.00"), day=DAY, txn="TXN-1")
    world["pms"].add(a, "payment", D("901.00"))
    world["lender"].lines = [purchase_line("TXN-1", a, D("1000.00"), D("99.00"))]
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    item = run.items.get()
    assert item.outcome == Outcome.MISSING_IN_PMS
    assert reconciliation.post_missing_entries(item.pk) == "Posted 1 missing entry to the ledger."
    (request,) = world["pms"].posted
    assert (request.kind, request.amount, request.type_name, request.patient_id) == (
        LedgerEntryKind.ADJUSTMENT, D("-99.00"), "CareCredit Merchant Fee", a.patient_id)
    assert posting_marker(a.reference, "merchant_fee") in request.note
    fee = LedgerPosting.objects.get(case=a, kind="merchant_fee")
    assert (fee.write_status, fee.write_attempts) == (WriteStatus.WRITTEN, 2)
    # Again: the ledger has it now, nothing is posted twice; the day matches.
    assert reconciliation.post_missing_entries(item.pk) == "Posted 0 missing entries to the ledger."
    assert len(world["pms"].posted) == 1
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    assert run.items.get().outcome == Outcome.MATCHED


def test_post_the_missing_entries_of_a_case_stopped_after_the_charge_reruns_its_step(world, monkeypatch):
    b, _ = charged_case(world["main"], gross=D("1500.00"), day=DAY, txn="TXN-B", state=CaseState.PURCHASED, post=())
    world["lender"].lines = [purchase_line("TXN-B", b, D("1500.00"), D("148.50"))]
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    redriven = []
    from financing.services import sweeps

    monkeypatch.setattr(sweeps, "redrive", lambda case_id: redriven.append(case_id))
    said = reconciliation.post_missing_entries(run.items.get().pk)
    assert said.startswith("The case's posting step runs again")
    assert redriven == [b.pk]
    assert world["pms"].posted == []  # the step posts, not this action


def test_the_command_prints_a_summary(world, capsys):
    one_of_each(world)
    call_command("reconcile", "--day", "2026-12-03", "--merchant", "5348120000000001")
    out = capsys.readouterr().out
    assert "Merchant …0001 · Dec 3, 2026" in out
    assert "Purchases $6,500.00 · fees $673.50 · refunds $250.00 · net $5,576.50" in out
    assert "Matched: 2 · Missing in the PMS: 1 · Missing at the lender: 1 · Amount differs: 1" in out
    assert out.count("\n  - ") == 3


def test_the_command_refuses_a_bad_day_or_an_unknown_merchant(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("reconcile", "--day", "12/03/2026")
    with pytest.raises(CommandError, match="No location has the merchant number 999"):
        call_command("reconcile", "--merchant", "999")
    assert ReconciliationRun.objects.count() == 0


def test_a_voided_purchase_is_not_missing_at_the_lender(world):
    a, purchase = charged_case(world["main"], gross=D("1000.00"), day=DAY, txn="TXN-1", post=())
    Purchase.objects.filter(pk=purchase.pk).update(status=Purchase.Status.VOIDED)
    run = reconciliation.reconcile_day("5348120000000001", DAY)
    assert run.items.count() == 0
    assert (run.purchases, run.net) == (D("0.00"), D("0.00"))


