"""The template's merchant fee rates are one labelled percent per promotion, not a JSON box."""

import html

import pytest

from financing.models import ArrangementTemplate
from tests.financing.test_in_house_admin import admin_client, template_form  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def change_url(template):
    return f"/admin/financing/arrangementtemplate/{template.pk}/change/"


def test_each_promotion_has_its_own_labelled_percent_field(admin_client, template):  # noqa: F811
    template.merchant_fee_rates = {"deferred_12": "9.90"}
    template.save()
    page = html.unescape(admin_client.get(change_url(template)).content.decode())
    assert "12 months deferred interest — fee %" in page
    assert "60 months reduced APR, fixed payments — fee %" in page
    assert 'name="fee_rate_deferred_12"' in page and 'value="9.90"' in page
    assert 'name="merchant_fee_rates"' not in page


def test_rates_are_stored_as_strings_and_blank_means_no_rate(admin_client, template):  # noqa: F811
    form = template_form(template, fee_rate_deferred_12="9.875", fee_rate_reduced_apr_60="0", fee_rate_deferred_6="")
    assert admin_client.post(change_url(template), form).status_code == 302
    template.refresh_from_db()
    assert template.merchant_fee_rates == {"deferred_12": "9.875", "reduced_apr_60": "0"}


@pytest.mark.parametrize("typed, error", [
    ("100.5", "A fee rate is a percent from 0 to 100."),
    ("-1", "A fee rate is a percent from 0 to 100."),
    ("9.8751", "A fee rate has at most 3 decimals, e.g. 9.875."),
    ("nine", "Enter the fee as a percent, e.g. 9.90."),
])
def test_a_bad_rate_is_refused_with_a_clear_error_and_nothing_saved(admin_client, template, typed, error):  # noqa: F811
    template.merchant_fee_rates = {"deferred_12": "9.90"}
    template.save()
    response = admin_client.post(change_url(template), template_form(template, fee_rate_deferred_12=typed))
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    template.refresh_from_db()
    assert template.merchant_fee_rates == {"deferred_12": "9.90"}
