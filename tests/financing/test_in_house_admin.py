"""The template and override admin refuse an in-house remainder where CareCredit is
recorded as a payment arrangement (it only goes beside a CareCredit payment)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from financing.models import ArrangementTemplate, TemplateOverride
from tests.conftest import make_user, verified_login

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = "An in-house arrangement for the rest works only where CareCredit is recorded as a payment"


@pytest.fixture
def admin_client(location):
    user = make_user("root", location, is_staff=True, is_superuser=True)
    client = Client()
    verified_login(client, user)
    return client


def template_form(template, **changes):
    """The template's change form as posted back, with `changes`."""
    data = {}
    for field in ArrangementTemplate._meta.concrete_fields:
        if field.name in ("id",):
            continue
        value = getattr(template, field.attname)
        if field.name == "merchant_fee_rates":
            for code, rate in (value or {}).items():
                data[f"fee_rate_{code}"] = rate
            continue
        data[field.name] = "" if value is None else ("on" if value is True else value)
    for name in [n for n, v in data.items() if v is False]:
        del data[name]
    data.update(changes)
    return data


def test_template_refuses_in_house_with_arrangement_recording(admin_client, template):
    url = f"/admin/financing/arrangementtemplate/{template.pk}/change/"
    response = admin_client.post(url, template_form(template, recording="arrangement", shortfall="in_house"))
    assert response.status_code == 200 and MESSAGE in response.text
    template.refresh_from_db()
    assert template.shortfall == "down_payment"

    response = admin_client.post(url, template_form(template, recording="payment", shortfall="in_house"))
    assert response.status_code == 302, response.text[:3000]
    template.refresh_from_db()
    assert (template.recording, template.shortfall) == ("payment", "in_house")


def test_template_change_refused_where_a_locations_override_would_mix_them(admin_client, template, location):
    template.recording, template.shortfall = "payment", "in_house"
    template.save()
    TemplateOverride.objects.create(location=location, recording="arrangement", why="records the schedule")
    url = f"/admin/financing/arrangementtemplate/{template.pk}/change/"
    response = admin_client.post(url, template_form(template, note_template=template.note_template + " "))
    assert response.status_code == 200 and MESSAGE in response.text and location.code in response.text


def test_override_refuses_in_house_where_the_location_records_an_arrangement(admin_client, template, location):
    assert template.recording == "arrangement"
    data = {"location": location.pk, "why": "carries its own", "shortfall": "in_house"}
    response = admin_client.post("/admin/financing/templateoverride/add/", data)
    assert response.status_code == 200 and MESSAGE in response.text
    assert not TemplateOverride.objects.exists()

    response = admin_client.post("/admin/financing/templateoverride/add/", {**data, "recording": "payment"})
    assert response.status_code == 302
    override = TemplateOverride.objects.get()
    assert (override.recording, override.shortfall) == ("payment", "in_house")
