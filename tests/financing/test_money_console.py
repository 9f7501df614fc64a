"""The case page's money box and its *Charge now* form (a case recorded as a payment), over
HTTP against the sandboxes."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from financing.models import CaseState, ChargeWhen, FinancedCase, Purchase
from financing.services.purchase import local_today
from tests.console.console_factories import billing_user, console_client
from tests.financing.test_money_flow import approve, lender_transactions, payment_template  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def page(client, case):
    response = client.get(reverse("admin:financing_financedcase_change", args=[case.pk]))
    assert response.status_code == 200
    return response.content.decode()


def text_of(html, element_id):
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</td>', html, re.S)
    return re.sub(r"<[^>]+>", "", match.group(1)).strip() if match else None


def test_the_money_box_shows_the_estimate_then_charge_now_then_the_postings(
    sandboxes, payment_template, location, coordinator, tasks  # noqa: F811
):
    payment_template.charge_when = ChargeWhen.STAFF
    payment_template.save()
    clerk = billing_user("clerk", location)
    client = console_client(clerk)
    case, patient = approve(sandboxes, location, coordinator, tasks)
    tasks.drain()
    html = page(client, case)
    assert (text_of(html, "money-gross"), text_of(html, "money-fee"), text_of(html, "money-net")) == ("$2,234.57", "$221.22", "$2,013.35")
    assert "Merchant fee (9.90%)" in html and 'id="charge-now"' in html

    url = reverse("admin:financing_financedcase_charge_now", args=[case.pk])
    too_far = local_today(location) + timedelta(days=31)
    response = client.post(url, {"treatment_day": too_far.isoformat()}, follow=True)
    assert response.status_code == 200 and "more than 30 days away" in response.content.decode()
    response = client.post(url, {"treatment_day": "not a date"}, follow=True)
    assert response.status_code == 200 and "Give the treatment date" in response.content.decode()
    assert lender_transactions(sandboxes) == []

    response = client.post(url, {"treatment_day": local_today(location).isoformat()}, follow=True)
    assert response.status_code == 200
    tasks.drain()
    case = FinancedCase.objects.get(pk=case.pk)
    assert case.state == CaseState.COMPLETED
    html = page(client, case)
    assert 'id="charge-now"' not in html
    purchase = case.purchase
    status = text_of(html, "purchase-status")
    assert status.startswith("Charged") and purchase.authorization_code in status and "Charge now by clerk" in status
    postings = re.search(r'id="postings">(.*?)</table>', html, re.S).group(1)
    assert "$2,013.35" in postings and "-$221.22" in postings
    assert postings.count("Written") == 2
    assert purchase.status == Purchase.Status.SETTLED


def test_charge_now_is_not_offered_to_a_coordinator_nor_for_an_arrangement_case(
    sandboxes, template, location, coordinator, tasks
):
    clerk = billing_user("clerk", location)
    case, _ = approve(sandboxes, location, coordinator, tasks)
    html = page(console_client(clerk), case)
    assert 'id="money-box"' not in html and 'id="charge-now"' not in html
