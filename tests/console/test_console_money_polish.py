"""The money pages as the demo's own people see them (issue 15's polish): what a demo login
may open, and the plain words of the case page, the template pages and the refund form."""

import html
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.console.console_factories import console_client

pytestmark = pytest.mark.django_db


def seeded_user(username):
    call_command("seed_demo", stdout=io.StringIO())
    return get_user_model().objects.get(username=username)


@pytest.mark.parametrize("username", ["billing", "central"])
def test_the_demo_billing_logins_open_reconciliation_and_act_on_it(username):
    user = seeded_user(username)
    client = console_client(user)
    page = client.get("/admin/reconciliation/")
    assert page.status_code == 200
    assert user.has_perm("financing.change_reconciliationitem")
    assert 'href="/admin/reconciliation/"' in client.get("/admin/dashboard/").content.decode()


def test_a_coordinator_has_no_reconciliation():
    client = console_client(seeded_user("coordinator"))
    assert client.get("/admin/reconciliation/").status_code == 403


def test_the_template_pages_name_settings_in_words_and_the_example_rates_say_carecredit():
    from financing.models import ArrangementTemplate, Location, TemplateOverride

    client = console_client(seeded_user("admin"))
    template = ArrangementTemplate.objects.get(name="Group standard")
    page = html.unescape(client.get(f"/admin/financing/arrangementtemplate/{template.pk}/change/").content.decode())
    assert "Example rates — fill in your own CareCredit agreement's" in page
    assert "carecredit agreement" not in page
    assert ("demo-north — first payment day of month; how CareCredit is recorded; "
            "when CareCredit approves less than the plan") in page
    assert "demo-od — how CareCredit is recorded" in page
    overrides = html.unescape(client.get("/admin/financing/templateoverride/").content.decode())
    assert "how CareCredit is recorded" in overrides
    north = Location.objects.get(code="demo-north")
    location = html.unescape(client.get(f"/admin/financing/location/{north.pk}/change/").content.decode())
    assert "<td>How CareCredit is recorded</td><td>CareCredit payment and merchant-fee adjustment</td>" in location
    assert "<td>When CareCredit approves less than the plan</td><td>An in-house payment arrangement for the rest</td>" in location
    for field_name in ("first_payment_day_of_month", "recording", "shortfall", "charge_when"):
        assert not TemplateOverride._meta.get_field(field_name).verbose_name.count("_")
        assert f">{field_name}<" not in location and f"— {field_name}" not in page and f"{field_name}," not in overrides
    for code in ("in_house", "down_payment"):
        assert f"<td>{code}</td>" not in location


def test_a_case_recorded_as_a_payment_says_why_it_has_no_arrangement_and_labels_both_cancel_boxes(template):
    from datetime import date
    from decimal import Decimal

    from financing.models import CaseState
    from tests.console.console_factories import billing_user, plain_location
    from tests.financing.recon_factories import charged_case

    north = plain_location(template, "north", name="Northside Dental")
    case, _ = charged_case(north, gross=Decimal("1045.00"), day=date(2026, 12, 4), txn="txn_1", state=CaseState.NEEDS_ATTENTION)
    page = console_client(billing_user("ann", north)).get(f"/admin/financing/financedcase/{case.pk}/change/").content.decode()
    page = html.unescape(page)
    assert "Not computed yet" not in page
    assert "None: CareCredit is recorded as a payment (see Money)" in page
    assert 'id="refund-and-cancel"' in page and 'id="cancel-case"' in page
    assert '<label for="id_refund_cancel_reason">Why cancel</label> <textarea name="reason"' in page
    assert '<label for="id_reason">Why cancel</label> <textarea name="reason"' in page
    assert page.count('id="id_reason"') == 1 and page.count('id="id_refund_cancel_reason"') == 1
