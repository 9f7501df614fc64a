"""Several PMS products in a real browser at 1366×768: the location page's Test connection
against the connector sandboxes (each its own product, over HTTP), and the case list's PMS
product filter. Same pattern as test_console_browser.py: Playwright driving Debian's
Chromium against a live server, signed in with a second factor."""

from pathlib import Path

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from financing.models import Location
from sandboxes.dentrix import serve_in_thread
from tests.conftest import make_user
from tests.console.console_factories import billing_user, make_case, plain_location
from tests.console.test_console_browser import CHROMIUM, browser, shot, sign_in  # noqa: F401 (browser: the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"),
]


@pytest.fixture(scope="module")
def connectors():
    running = {product: serve_in_thread(port=0, product=product) for product in ("dentrix_enterprise", "dentrix_ascend")}
    yield running
    for sandbox in running.values():
        sandbox.stop()


def signed_in(browser, live_server, user):  # noqa: F811
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, user.username, f"pw-{user.username}", device)
    return page


def in_view(page, selector) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] < 768


def test_testing_a_locations_connection_before_saving_it(browser, live_server, template, connectors):  # noqa: F811
    enterprise, ascend = connectors["dentrix_enterprise"], connectors["dentrix_ascend"]
    site = plain_location(template, "ent", name="Enterprise Dental", pms_kind="dentrix_enterprise", pms_base_url=enterprise.base_url)
    page = signed_in(browser, live_server, make_user("root", is_staff=True, is_superuser=True, phone=""))
    page.goto(f"{live_server.url}/admin/financing/location/{site.pk}/change/")

    page.click("#test-connection")
    page.wait_for_selector("#connection-result")
    assert page.inner_text("#connection-found") == (
        "Found Dentrix Enterprise 11.0.2 Update 4, practice database sandbox-dentrix_enterprise; can: several plans per "
        "account, plan versions, plan names, payment agreements, ledger notes."
    )
    assert page.inner_text("#connection-matches") == "✓ This is the location's PMS product."
    assert in_view(page, "#connection-result")  # the page comes back at the box, not at its top
    shot(page, "products-1-test-connection-1366")

    # The new address, typed and not saved: another product answers there.
    page.fill("#id_pms_base_url", ascend.base_url)
    page.click("#test-connection")
    page.wait_for_selector("#connection-mismatch")
    assert page.inner_text("#connection-mismatch") == (
        "This connection is Dentrix Ascend, not Dentrix Enterprise. Choose the PMS product the connection serves, "
        "or the connection of a Dentrix Enterprise database."
    )
    assert page.input_value("#id_pms_base_url") == ascend.base_url  # the edit survives the test
    assert Location.objects.get(pk=site.pk).pms_base_url == enterprise.base_url  # and is not saved
    shot(page, "products-2-another-product-1366")

    # Saving it as it stands is refused on the PMS product; saying Ascend saves.
    page.click("input[name=_save] >> nth=-1")
    page.wait_for_selector(".errornote")
    assert "This connection is Dentrix Ascend, not Dentrix Enterprise." in page.inner_text(".field-pms_kind")
    page.select_option("#id_pms_kind", "dentrix_ascend")
    page.click("#test-connection")
    page.wait_for_selector("#connection-matches")
    page.click("input[name=_save] >> nth=-1")
    page.wait_for_selector(".messagelist")
    assert "The PMS connection checked out: Dentrix Ascend cloud, practice database sandbox-dentrix_ascend;" in page.inner_text(".messagelist")
    saved = Location.objects.get(pk=site.pk)
    assert (saved.pms_kind, saved.pms_base_url) == ("dentrix_ascend", ascend.base_url)
    assert "Dentrix Ascend" in page.inner_text("#result_list")  # the list names the product

    # Enter in a field saves (the Save buttons come first in the form), it does not test.
    page.goto(f"{live_server.url}/admin/financing/location/{site.pk}/change/")
    page.fill("#id_name", "Enterprise Dental East")
    page.press("#id_name", "Enter")
    page.wait_for_selector(".messagelist")
    assert Location.objects.get(pk=site.pk).name == "Enterprise Dental East"


def test_a_clerk_filters_the_case_list_by_pms_product(browser, live_server, template):  # noqa: F811
    main = plain_location(template, "main", name="Main Street Dental")
    enterprise = plain_location(template, "ent", name="Enterprise Dental", pms_kind="dentrix_enterprise")
    plain_location(template, "asc", name="Ascend Dental", pms_kind="dentrix_ascend")  # not theirs
    for _ in range(3):
        make_case(main)
    e_cases = [make_case(enterprise) for _ in range(2)]
    page = signed_in(browser, live_server, billing_user("cat", main, enterprise))

    page.goto(f"{live_server.url}/admin/financing/financedcase/")
    product_filter = page.locator("#changelist-filter details", has_text="By PMS product")
    assert product_filter.locator("li").all_inner_texts() == ["All", "Dentrix", "Dentrix Enterprise"]
    assert product_filter.is_visible()
    product_filter.get_by_role("link", name="Dentrix Enterprise").click()
    page.wait_for_url("**pms_product=dentrix_enterprise**")
    shown = page.locator("#result_list tbody th.field-reference").all_inner_texts()
    assert sorted(shown) == sorted(case.reference for case in e_cases)
    shot(page, "products-3-case-list-filter-1366")

    page.locator("#result_list tbody th.field-reference a").first.click()
    page.wait_for_selector("#case-banner")
    assert page.inner_text("#pms-product") == "Dentrix Enterprise"
    assert page.inner_text("#patient").endswith(f"(Patient ID {e_cases[-1].patient_id})")
