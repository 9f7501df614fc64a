"""Refunds and cancellations after a purchase, over HTTP against the CareCredit and Dentrix
sandboxes: the lender refund once (by its key), then one refund adjustment."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.test import Client
from django.utils import timezone

from financing import services
from financing.models import CaseState, FinancedCase, LedgerPosting, Purchase, Refund, WriteStatus
from financing.services import refunds
from tests.conftest import make_user, verified_login
from tests.financing.money_cases import approved_case, charge, ledger, lender_transactions, payment_template, post

pytestmark = pytest.mark.django_db(transaction=True)


def posted_case(sandboxes, location, template, coordinator, tasks):
    payment_template(template)
    case = approved_case(sandboxes, location, coordinator, tasks)
    charge(case)
    assert post(case, tasks) == "posted"
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    return case


def lender_refunds(sandboxes):
    return [t for t in lender_transactions(sandboxes) if t["type"] == "REFUND"]


def refund_adjustments(sandboxes, case):
    _, adjustments = ledger(sandboxes, case.patient_id)
    return [(a["amount"], a["adjustment_type"]) for a in adjustments if a["adjustment_type"] == "CareCredit Refund"]


def test_a_partial_refund_then_the_rest(sandboxes, location, template, coordinator, billing, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    first = refunds.request_refund(case.pk, amount="1,000.00", why="One crown not done", actor=billing)
    assert first.idempotency_key == f"{case.reference}-refund-1"
    assert tasks.names() == ["financing.refund"]
    assert [r for _, r in tasks.drain()] == ["refunded"]
    first.refresh_from_db()
    assert first.status == Refund.Status.REFUNDED and first.lender_transaction_id
    assert refund_adjustments(sandboxes, case) == [("1000.00", "CareCredit Refund")]
    posting = LedgerPosting.objects.get(refund=first)
    assert posting.write_status == WriteStatus.WRITTEN and posting.marker == f"[chairside:{case.reference}/refund-1]"

    purchase = Purchase.objects.get(case=case)
    assert refunds.left_to_refund(purchase) == D("1500.00")
    second = refunds.request_refund(case.pk, amount=D("1500.00"), why="Treatment cancelled", actor=billing)
    tasks.drain()
    second.refresh_from_db()
    assert second.status == Refund.Status.REFUNDED and second.idempotency_key == f"{case.reference}-refund-2"
    assert refunds.left_to_refund(purchase) == D("0.00")
    assert sorted(refund_adjustments(sandboxes, case)) == [("1000.00", "CareCredit Refund"), ("1500.00", "CareCredit Refund")]
    assert len(lender_refunds(sandboxes)) == 2
    assert LogEntry.objects.filter(object_id=str(case.pk), change_message__startswith="Refund of $1,000.00").count() == 1


def test_a_refund_over_what_is_left_is_refused_and_nothing_is_sent(sandboxes, location, template, coordinator, billing, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    with pytest.raises(refunds.RefundError, match=r"Only \$2,500.00 of the \$2,500.00 purchase is left to refund, not \$2,500.01"):
        refunds.request_refund(case.pk, amount="2500.01", why="Too much", actor=billing)
    for bad, message in (("abc", "not an amount"), ("0", "more than"), ("10.005", "dollars and cents")):
        with pytest.raises(refunds.RefundError, match=message):
            refunds.request_refund(case.pk, amount=bad, why="x", actor=billing)
    with pytest.raises(refunds.RefundError, match="Give a reason"):
        refunds.request_refund(case.pk, amount="10.00", why=" ", actor=billing)
    with pytest.raises(refunds.RefundError, match="Only billing"):
        refunds.request_refund(case.pk, amount="10.00", why="x", actor=coordinator)
    assert not Refund.objects.exists() and tasks.names() == []
    assert lender_refunds(sandboxes) == [] and refund_adjustments(sandboxes, case) == []


def test_an_ambiguous_refund_is_resolved_by_lookup_exactly_once(sandboxes, location, template, coordinator, billing, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    refund = refunds.request_refund(case.pk, amount="250.00", why="Adjusted fee", actor=billing)
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/credit/transact", mode="commit_then_error", count=1)
    assert [r for _, r in tasks.drain(include_delayed=False)] == ["retry"]
    refund.refresh_from_db()
    assert refund.status == Refund.Status.UNKNOWN and refund.attempts == 1
    assert len(lender_refunds(sandboxes)) == 1  # the lender committed it
    assert refund_adjustments(sandboxes, case) == []
    sandboxes.clear_faults()
    assert [r for _, r in tasks.drain()] == ["refunded"]  # looked up by its key, not sent again
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED and refund.attempts == 1
    assert len(lender_refunds(sandboxes)) == 1
    assert refund_adjustments(sandboxes, case) == [("250.00", "CareCredit Refund")]
    transacts = [r for r in requests_to(sandboxes.carecredit_url) if r["path"] == "/v1/credit/transact" and r["method"] == "POST"]
    assert len(transacts) == 2  # the purchase and the one refund


def requests_to(url):
    import requests

    return requests.get(f"{url}/_sandbox/requests", timeout=5).json()


def test_cancel_on_the_purchase_day_before_posting_voids_it(sandboxes, location, template, coordinator, billing, tasks):
    payment_template(template)
    case = approved_case(sandboxes, location, coordinator, tasks)
    purchase = charge(case)
    cancelled = services.cancel_case(case.pk, reason="Patient changed their mind", actor=billing)
    assert cancelled.state == CaseState.CANCELLED
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.VOIDED
    [made] = [t for t in lender_transactions(sandboxes) if t["type"] == "PURCHASE"]
    assert made["status"].lower() == "voided"
    payments, adjustments = ledger(sandboxes, case.patient_id)
    assert payments == [] and adjustments == [] and not LedgerPosting.objects.exists()


def test_cancel_is_refused_while_the_purchase_is_not_refunded(sandboxes, location, template, coordinator, billing, tasks):
    payment_template(template)
    case = approved_case(sandboxes, location, coordinator, tasks)
    charge(case)
    # The payment is posted (as the posting step would have), so it can no longer be voided.
    from financing.services.posting import post_once, prepare_posting

    purchase = Purchase.objects.get(case=case)
    post_once(case, prepare_posting(case, LedgerPosting.Kind.PAYMENT, type_name="CareCredit Payment", amount=purchase.net_amount, entry_date=purchase.business_day))
    with pytest.raises(services.InvalidTransition, match=r"Refund \$2,500.00 first"):
        services.cancel_case(case.pk, reason="Changed mind", actor=billing)
    case.refresh_from_db()
    assert case.state == CaseState.PURCHASED
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.SETTLED and lender_refunds(sandboxes) == []

    done = services.refund_rest_and_cancel(case.pk, why="Changed mind", actor=billing)
    assert done.state == CaseState.CANCELLED
    assert len(lender_refunds(sandboxes)) == 1 and refund_adjustments(sandboxes, case) == [("2500.00", "CareCredit Refund")]


def test_the_console_refund_form(sandboxes, location, template, coordinator, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    from django.contrib.auth.models import Permission

    user = make_user("clerk", location, role="billing", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_financedcase", "change_financedcase"]))
    client = Client()
    verified_login(client, user)
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert page.status_code == 200 and "Refund" in page.text
    url = f"/admin/financing/financedcase/{case.pk}/refund/"
    bad = client.post(url, {"amount": "9,999.00", "why": "too much"}, follow=True)
    assert bad.status_code == 200 and "Only $2,500.00 of the $2,500.00 purchase is left to refund" in bad.text
    assert client.post(url, {"amount": "12abc", "why": "x"}, follow=True).status_code == 200
    assert not Refund.objects.exists()
    ok = client.post(url, {"amount": "100.00", "why": "Goodwill"}, follow=True)
    assert ok.status_code == 200 and "Refund of $100.00" in ok.text
    assert Refund.objects.get().amount == D("100.00")


def test_a_refund_run_waits_while_its_case_is_held_and_never_writes_twice(sandboxes, location, template, coordinator, billing, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    refund = refunds.request_refund(case.pk, amount="100.00", why="Adjusted fee", actor=billing)
    tasks.queue.clear()
    # Another worker holds the case (a step, a void, another run of this refund).
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="theirs", lease_until=timezone.now() + timedelta(minutes=1))
    assert refunds.run_refund(refund.pk) == "busy"
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (Refund.Status.PENDING, 0)
    assert lender_refunds(sandboxes) == [] and refund_adjustments(sandboxes, case) == []
    [again] = tasks.queue
    assert again.name == "financing.refund" and again.countdown == refunds.BUSY_RETRY_SECONDS
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="", lease_until=None)
    assert refunds.run_refund(refund.pk) == "refunded"
    assert refunds.run_refund(refund.pk) == "refunded"  # a second message finds it done
    assert len(lender_refunds(sandboxes)) == 1 and refund_adjustments(sandboxes, case) == [("100.00", "CareCredit Refund")]
    assert FinancedCase.objects.get(pk=case.pk).lease_token == ""  # the run gave the case back


def test_the_sweeper_runs_a_refund_whose_message_was_lost(sandboxes, location, template, coordinator, billing, tasks, settings):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    refund = refunds.request_refund(case.pk, amount="100.00", why="Adjusted fee", actor=billing)
    tasks.queue.clear()  # the message is lost
    assert refunds.refunds_to_redrive() == []  # not yet: it may still be on its way
    later = timezone.now() + timedelta(seconds=settings.SWEEP_SECONDS)
    assert refunds.refunds_to_redrive(now=later) == [refund.pk]
    assert refunds.run_refund(refund.pk) == "refunded"
    assert refunds.refunds_to_redrive(now=later + timedelta(hours=1)) == []
    assert len(lender_refunds(sandboxes)) == 1


def test_a_refund_the_pms_refuses_to_post_tells_billing_once_and_is_not_run_again(
    sandboxes, location, template, coordinator, billing, tasks, settings
):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    template.refund_adjustment_type = "CareCredit Refnud"  # not a type the practice has
    template.save()
    mail.outbox.clear()
    refund = refunds.request_refund(case.pk, amount="100.00", why="Adjusted fee", actor=billing)
    assert [r for _, r in tasks.drain()] == ["posting_refused", "sent"]
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REFUNDED  # the money went back; its adjustment did not post
    assert "CareCredit Refnud" in refund.failure
    assert refund_adjustments(sandboxes, case) == []
    [message] = mail.outbox
    assert message.to == [billing.email] and message.subject == f"Refund needs attention: {case.reference} at {location.name}"
    assert "$100.00" in message.body and "Refunded at CareCredit: yes" in message.body
    later = timezone.now() + timedelta(hours=1)
    assert refunds.refunds_to_redrive(now=later) == []


def clerk_client(location):
    from django.contrib.auth.models import Permission

    user = make_user("clerk", location, role="billing", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_financedcase", "change_financedcase"]))
    client = Client()
    verified_login(client, user)
    return client


def test_the_refund_amount_starts_empty_with_what_is_left_as_a_hint(sandboxes, location, template, coordinator, tasks):
    import re

    case = posted_case(sandboxes, location, template, coordinator, tasks)
    page = clerk_client(location).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    field = re.search(r'<input[^>]*name="amount"[^>]*>', page).group(0)
    assert "value=" not in field
    assert '<span class="muted" id="refund-hint">up to $2,500.00 left</span>' in page


def test_a_refused_refund_reads_as_one_plain_sentence(sandboxes, location, template, coordinator, billing, tasks):
    case = posted_case(sandboxes, location, template, coordinator, tasks)
    Purchase.objects.filter(case=case).update(lender_transaction_id="TXN-NOT-THERE")  # CareCredit knows no such purchase
    refund = refunds.request_refund(case.pk, amount="100.00", why="Goodwill", actor=billing)
    tasks.drain()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure == (
        "CareCredit refused the refund; nothing was given back. Check the purchase with CareCredit before trying again."
    )
    page = clerk_client(location).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert f"<td>{refund.failure}</td>".replace("'", "&#x27;") in page
    assert "Refused by the lender" not in page and "_not_found" not in page
    assert refund_adjustments(sandboxes, case) == []


@pytest.mark.parametrize("text, sentence", [
    ("CareCredit refused the refund: only $750.00 of the purchase is left to refund",
     "CareCredit refused the refund: only $750.00 of the purchase is left to refund."),
    ("the purchase was voided", "CareCredit refused the refund: the purchase was voided."),
    ("No such transaction (404): transaction_not_found",
     "CareCredit refused the refund; nothing was given back. Check the purchase with CareCredit before trying again."),
])
def test_a_refusal_is_put_in_words_without_codes(text, sentence):
    assert refunds.refusal_in_words("CareCredit", text) == sentence
