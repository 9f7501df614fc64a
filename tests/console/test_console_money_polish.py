"""The money pages as the demo's own people see them (issue 15's polish): what a demo login
may open, and the plain words of the case page, the template pages and the refund form."""

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
