"""The location page's Test connection and the product check on save, in the admin's words.

The PMS port is stood in for by a small fake here (only what `describe()` answers or
raises): these tests pin the wording and what is or is not saved. The same paths against
the real connector sandbox over HTTP are in test_console_connection_sandbox.py.
"""

import pytest
from django.contrib.auth.models import Permission

from financing import partners
from financing.models import Location
from financing.ports import ConnectorInfo, PermanentPartnerError, TransientPartnerError
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, plain_location

pytestmark = pytest.mark.django_db

ENTERPRISE_CAPABILITIES = ("payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names")
ENTERPRISE = ConnectorInfo("dentrix_enterprise", "11.0.2 Update 4", "sandbox-dentrix_enterprise", ENTERPRISE_CAPABILITIES)
ASCEND = ConnectorInfo("dentrix_ascend", "cloud", "sandbox-dentrix_ascend",
                       ("payment_agreements", "ledger_notes", "procedure_plans", "needs_posted_production"))
KEY = "k-7f3a9c-secret"


def registry_entry(name, product):
    """A registry entry for a second product (the real ones come with their bridges)."""
    return {**partners.PMS_IMPLEMENTATIONS["dentrix"], "name": name, "product": product}


@pytest.fixture
def products(monkeypatch):
    monkeypatch.setitem(partners.PMS_IMPLEMENTATIONS, "dentrix_enterprise", registry_entry("Dentrix Enterprise", "dentrix_enterprise"))
    monkeypatch.setitem(partners.PMS_IMPLEMENTATIONS, "dentrix_ascend", registry_entry("Dentrix Ascend", "dentrix_ascend"))


class FakeConnection:
    """Answers describe() with `answer` (a ConnectorInfo, or an error to raise); records the
    connection settings it was asked with."""

    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def __call__(self, location):  # stands in for partners.pms_for
        self.asked.append((location.pms_kind, location.pms_base_url, location.pms_api_key))
        return self

    def describe(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def connection(monkeypatch):
    def install(answer):
        fake = FakeConnection(answer)
        monkeypatch.setattr(partners, "pms_for", fake)
        return fake

    return install


@pytest.fixture
def enterprise(template, products):
    return plain_location(template, "ent", name="Enterprise Dental", pms_kind="dentrix_enterprise",
                          pms_base_url="http://10.0.0.5:8105", pms_api_key=KEY)


@pytest.fixture
def root():
    return console_client(make_user("root", is_staff=True, is_superuser=True, phone=""))


def url(location):
    return f"/admin/financing/location/{location.pk}/change/"


def page_data(page) -> dict:
    """What the page's form would post as it stands: its fields and its inlines'."""
    data = {}

    def take(form):
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else str(value)

    take(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        take(formset.management_form)
        for form in formset.forms:
            take(form)
    return data


def post(client, location, changes=None, *, button="_test_connection"):
    page = client.get(url(location))
    assert page.status_code == 200
    data = {**page_data(page), **(changes or {}), button: "1"}
    return client.post(url(location), data)


def result(page) -> str:
    """The Test connection box's words, as a clerk reads them."""
    from html import unescape
    import re

    box = page.text.split('id="connection-result"', 1)[1].split("</div>", 1)[0]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", box.split(">", 1)[1])).split())


def test_it_says_what_the_connection_is_and_saves_nothing(root, enterprise, connection):
    fake = connection(ENTERPRISE)
    page = post(root, enterprise, {"name": "Renamed while testing"})

    assert page.status_code == 200
    assert result(page) == (
        "Found Dentrix Enterprise 11.0.2 Update 4, practice database sandbox-dentrix_enterprise; "
        "can: several plans per account, plan versions, plan names, payment agreements, ledger notes. "
        "✓ This is the location's PMS product."
    )
    assert fake.asked == [("dentrix_enterprise", "http://10.0.0.5:8105", KEY)]
    # Nothing saved; the page keeps the edit as typed, and says no error of its own.
    enterprise.refresh_from_db()
    assert enterprise.name == "Enterprise Dental"
    assert 'value="Renamed while testing"' in page.text
    assert "Please correct the error" not in page.text
    assert KEY not in result(page)


def test_it_tests_the_unsaved_address_and_key_on_the_page(root, enterprise, connection):
    fake = connection(ENTERPRISE)
    page = post(root, enterprise, {"pms_base_url": "http://10.0.0.9:9105/", "pms_api_key": "new-key"})
    assert fake.asked == [("dentrix_enterprise", "http://10.0.0.9:9105/", "new-key")]
    assert "✓ This is the location's PMS product." in result(page)
    enterprise.refresh_from_db()
    assert (enterprise.pms_base_url, enterprise.pms_api_key) == ("http://10.0.0.5:8105", KEY)


def test_what_an_ascend_connection_needs_is_said_apart_from_what_it_can(root, template, products, connection):
    ascend = plain_location(template, "asc", pms_kind="dentrix_ascend", pms_base_url="https://ascend.example.com")
    connection(ASCEND)
    assert result(post(root, ascend)) == (
        "Found Dentrix Ascend cloud, practice database sandbox-dentrix_ascend; can: plans over procedures, "
        "payment agreements, ledger notes; needs the treatment completed and posted to the ledger before a plan is written. "
        "✓ This is the location's PMS product."
    )


@pytest.mark.parametrize(
    "answer, words",
    [
        (
            TransientPartnerError("Dentrix could not be reached (connection refused or unknown host)"),
            "Checking the connection at 10.0.0.5:8105 failed: Dentrix could not be reached (connection refused or unknown host).",
        ),
        (
            TransientPartnerError("Dentrix could not be reached within 3 s (connect timeout)"),
            "Checking the connection at 10.0.0.5:8105 failed: Dentrix could not be reached within 3 s (connect timeout).",
        ),
        (
            PermanentPartnerError("Dentrix refused Chairside's credentials (HTTP 401); check this location's Dentrix connection settings", status=401),
            "The connection at 10.0.0.5:8105 refused the API key (HTTP 401): check the key.",
        ),
        (
            PermanentPartnerError("The Dentrix Enterprise connector does not say what it is (contract v1): upgrade it to contract v2.", status=404),
            "Checking the connection at 10.0.0.5:8105 failed: The Dentrix Enterprise connector does not say what it is "
            "(contract v1): upgrade it to contract v2.",
        ),
        (
            ConnectorInfo("", "", ""),
            "The connection at 10.0.0.5:8105 answered but does not say which product it is.",
        ),
        (
            PermanentPartnerError("Open Dental refused the request: the API key lacks the PaymentPlans permission", status=403),
            "Checking the connection at 10.0.0.5:8105 failed: Open Dental refused the request: the API key lacks "
            "the PaymentPlans permission.",
        ),
    ],
    ids=["refused", "timeout", "wrong-key", "v1-connector", "says-nothing", "od-permission"],
)
def test_a_connection_that_cannot_tell_gets_a_reason_never_a_500(root, enterprise, connection, answer, words):
    connection(answer)
    page = post(root, enterprise)
    assert page.status_code == 200
    assert result(page) == words
    assert KEY not in page.text.split('id="connection-test"', 1)[1]


def test_a_connection_of_another_product_is_named_on_test(root, enterprise, connection):
    connection(ASCEND)
    page = post(root, enterprise)
    assert result(page) == (
        "Found Dentrix Ascend cloud, practice database sandbox-dentrix_ascend; can: plans over procedures, payment agreements, "
        "ledger notes; needs the treatment completed and posted to the ledger before a plan is written. "
        "This connection is Dentrix Ascend, not Dentrix Enterprise. Choose the PMS product the connection serves, "
        "or the connection of a Dentrix Enterprise database."
    )
    assert page.context["adminform"].form.errors == {}  # a test reports; only saving refuses


def test_saving_another_product_than_the_connection_is_refused_on_the_pms_product(root, enterprise, connection):
    fake = connection(ASCEND)
    page = post(root, enterprise, {"pms_base_url": "http://10.0.0.6:8106"}, button="_save")
    assert page.status_code == 200
    assert page.context["adminform"].form.errors == {
        "pms_kind": ["This connection is Dentrix Ascend, not Dentrix Enterprise. Choose the PMS product the connection "
                     "serves, or the connection of a Dentrix Enterprise database."]
    }
    assert len(fake.asked) == 1
    enterprise.refresh_from_db()
    assert enterprise.pms_base_url == "http://10.0.0.5:8105"


def test_saving_an_unreachable_connection_saves_and_warns_it_was_not_checked(root, enterprise, connection):
    connection(TransientPartnerError("Dentrix could not be reached (connection refused or unknown host)"))
    page = post(root, enterprise, {"pms_base_url": "http://10.0.0.7:8105"}, button="_save")
    assert page.status_code == 302
    enterprise.refresh_from_db()
    assert enterprise.pms_base_url == "http://10.0.0.7:8105"
    shown = [(m.level_tag, m.message) for m in root.get(page.url).context["messages"]]
    assert shown[0] == (
        "warning",
        "Saved, but the PMS product could not be checked. Checking the connection at 10.0.0.7:8105 failed: Dentrix could not be "
        "reached (connection refused or unknown host). Test the connection once it answers.",
    )


def test_saving_a_matching_connection_says_what_it_found(root, enterprise, connection):
    connection(ENTERPRISE)
    page = post(root, enterprise, {"pms_api_key": "rotated-key"}, button="_save")
    assert page.status_code == 302
    enterprise.refresh_from_db()
    assert enterprise.pms_api_key == "rotated-key"
    messages = [m.message for m in root.get(page.url).context["messages"]]
    assert messages[0].startswith("The PMS connection checked out: Dentrix Enterprise 11.0.2 Update 4, practice database sandbox-dentrix_enterprise;")


def test_a_save_that_leaves_the_connection_alone_asks_nothing(root, enterprise, connection):
    fake = connection(AssertionError("the connection was asked"))
    page = post(root, enterprise, {"name": "Enterprise Dental Care"}, button="_save")
    assert page.status_code == 302 and fake.asked == []
    enterprise.refresh_from_db()
    assert enterprise.name == "Enterprise Dental Care"


def test_a_product_chairside_cannot_connect_to_yet_is_refused(root, enterprise, connection, monkeypatch):
    monkeypatch.delitem(partners.PMS_IMPLEMENTATIONS, "eaglesoft", raising=False)
    fake = connection(ENTERPRISE)
    page = post(root, enterprise, {"pms_kind": "eaglesoft"}, button="_save")
    assert page.context["adminform"].form.errors == {"pms_kind": ["Chairside cannot connect to Eaglesoft (connector) yet: choose another PMS product."]}
    assert fake.asked == []
    enterprise.refresh_from_db()
    assert enterprise.pms_kind == "dentrix_enterprise"


def test_adding_a_location_checks_its_connection(root, template, products, connection):
    fake = connection(ASCEND)
    page = root.get("/admin/financing/location/add/")
    data = {**page_data(page), "code": "new", "name": "New Dental", "template": str(template.pk), "pms_kind": "dentrix_enterprise",
            "pms_base_url": "http://10.0.0.8:8105", "pms_api_key": "k", "lender_base_url": "http://10.0.0.8:8101",
            "lender_client_id": "c", "lender_client_secret": "s", "merchant_number": "5348120000000009", "_save": "1"}
    refused = root.post("/admin/financing/location/add/", data)
    assert refused.status_code == 200 and list(refused.context["adminform"].form.errors) == ["pms_kind"]
    assert not Location.objects.filter(code="new").exists()
    fake.answer = ENTERPRISE
    assert root.post("/admin/financing/location/add/", data).status_code == 302
    assert Location.objects.get(code="new").pms_kind == "dentrix_enterprise"
    assert len(fake.asked) == 2


def test_a_clerk_who_cannot_change_locations_cannot_test_them(enterprise, connection):
    fake = connection(ENTERPRISE)
    ann = console_client(billing_user("ann", enterprise))  # view_location, not change_location
    page = ann.get(url(enterprise))
    assert page.status_code == 200
    assert 'name="_test_connection"' not in page.text
    assert KEY not in page.text and "Set (shown only to superusers)" in page.text
    assert "Dentrix Enterprise" in page.text  # the product by its name
    refused = ann.post(url(enterprise), {"_test_connection": "1"})
    assert refused.status_code == 403
    assert fake.asked == []


def test_a_site_admin_tests_the_saved_connection_of_their_own_location_only(template, enterprise, connection):
    fake = connection(ENTERPRISE)
    other = plain_location(template, "other", pms_kind="dentrix_enterprise", pms_base_url="http://10.0.0.66:8105")
    site_admin = make_user("site-admin", enterprise, role="admin", is_staff=True)
    site_admin.user_permissions.set(Permission.objects.filter(codename__in=["view_location", "change_location"]))
    client = console_client(site_admin)

    # The PMS settings are not theirs to change: a posted address is ignored, the saved one tested.
    page = post(client, enterprise, {"pms_base_url": "http://evil.example.com"})
    assert "✓ This is the location's PMS product." in result(page)
    assert fake.asked == [("dentrix_enterprise", "http://10.0.0.5:8105", KEY)]
    assert "It uses the saved connection." in page.text

    elsewhere = client.post(url(other), {"_test_connection": "1"})
    assert elsewhere.status_code == 302  # "doesn't exist" for them, as every other page
    assert len(fake.asked) == 1


def test_the_location_list_shows_the_product_by_name_and_filters_by_it(root, template, enterprise):
    plain_location(template, "main")
    listing = root.get("/admin/financing/location/")
    assert '<td class="field-pms_product">Dentrix Enterprise</td>' in listing.text
    assert '<td class="field-pms_product">Dentrix</td>' in listing.text
    only = root.get("/admin/financing/location/?pms_product=dentrix_enterprise")
    assert [loc.code for loc in only.context["cl"].result_list] == ["ent"]
    assert list(root.get("/admin/financing/location/?pms_product=nonsense").context["cl"].result_list) == []

