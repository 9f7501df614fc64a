"""A location reaches only its own clinic's patients (promise 10).

The locations of a multi-clinic practice database (Dentrix Enterprise, Open Dental) share
one connection; location scoping limits which cases staff see, the clinic binding limits
which patients a location may start a case for. The sandbox's new patients belong to
clinic "1" unless told otherwise; `main` is bound to clinic "1" here.
"""

import pytest
import requests
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from financing.models import CaseState, FinancedCase, Location
from tests.conftest import make_user, verified_login

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def main(location):
    location.pms_clinic_ids = "1"
    location.save()
    return location


@pytest.fixture
def api(main):
    client = APIClient()
    client.force_authenticate(make_user("coord", main))
    return client


def patient_in(sandboxes, clinic_id):
    body = {
        "first_name": "Ava", "last_name": "Thompson", "birth_date": "1980-04-12", "phone": "+15555550188",
        "email": "canary.patient@example.com",
        "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
        "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": "2500.00"}],
        "clinic_id": clinic_id,
    }
    response = requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def post_case(api, patient, location="main"):
    body = {"location": location, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}
    return api.post("/api/v1/cases/", body, format="json")


def test_a_patient_of_another_clinic_is_refused_at_intake_and_no_case_is_made(api, sandboxes, tasks):
    patient = patient_in(sandboxes, "2")
    response = post_case(api, patient)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "patient_id": [f"Patient {patient['patient_id']} belongs to another clinic of this practice database (clinic 2); this location serves clinic 1."]
    }
    assert "Thompson" not in response.content.decode()
    assert FinancedCase.objects.count() == 0
    assert tasks.queue == []
    assert sandboxes.carecredit_applications() == []


def test_a_patient_of_no_clinic_is_refused_by_a_location_bound_to_clinics(api, sandboxes, tasks):
    patient = patient_in(sandboxes, "")
    response = post_case(api, patient)
    assert response.status_code == 400
    assert response.json()["errors"]["patient_id"][0] == f"Patient {patient['patient_id']} belongs to no clinic in Dentrix; this location serves clinic 1."
    assert FinancedCase.objects.count() == 0


def test_a_location_serving_several_clinics_reaches_each_of_them(api, main, sandboxes, tasks):
    main.pms_clinic_ids = "1, 4"
    main.save()
    assert post_case(api, patient_in(sandboxes, "4")).status_code == 201
    assert post_case(api, patient_in(sandboxes, "1")).status_code == 201
    refused = post_case(api, patient_in(sandboxes, "2"))
    assert refused.json()["errors"]["patient_id"][0].endswith("(clinic 2); this location serves clinics 1, 4.")


def test_an_unbound_location_is_a_single_clinic_database_and_reaches_every_patient(location, sandboxes, tasks):
    assert location.clinic_ids == ()
    api = APIClient()
    api.force_authenticate(make_user("coord", location))
    assert post_case(api, patient_in(sandboxes, "2")).status_code == 201


def test_when_the_pms_was_down_at_intake_the_first_step_applies_the_rule_and_sends_nothing(api, main, sandboxes, tasks):
    patient = patient_in(sandboxes, "2")
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/patients", mode="error", status=503, count=1)
    response = post_case(api, patient)
    assert response.status_code == 201 and response.json()["plan_total"] is None

    tasks.drain()

    case = FinancedCase.objects.get()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == (
        f"Patient {patient['patient_id']} belongs to another clinic of this practice database (clinic 2); this location serves clinic 1."
    )
    assert case.resume_state == CaseState.CAPTURED
    assert case.application_id == ""
    assert sandboxes.carecredit_applications() == []


def test_the_clinic_binding_is_checked_and_tidied(main):
    main.pms_clinic_ids = " 1 ,4,4, north-2 "
    main.full_clean()
    assert main.pms_clinic_ids == "1, 4, north-2"
    assert main.clinic_ids == ("1", "4", "north-2")
    for bad in ("1; 2", "1,,2", "clinic 1", "x" * 21):
        main.pms_clinic_ids = bad
        with pytest.raises(ValidationError) as refused:
            main.full_clean()
        assert list(refused.value.message_dict) == ["pms_clinic_ids"]


def test_the_admin_shows_the_clinics_served_and_only_a_superuser_changes_them(main, template, sandboxes):
    from django.contrib import admin

    root = make_user("root", is_staff=True, is_superuser=True)
    site_admin = make_user("site-admin", main, role="admin", is_staff=True)
    site_admin.user_permissions.set(Permission.objects.filter(codename__in=["view_location", "change_location"]))

    as_root = Client()
    verified_login(as_root, root)
    listing = as_root.get("/admin/financing/location/")
    assert "Clinics served" in listing.text and "<td class=\"field-clinics_served\">1</td>" in listing.text
    page = as_root.get(f"/admin/financing/location/{main.pk}/change/")
    assert 'name="pms_clinic_ids"' in page.text and "Clinics served" in page.text
    assert "Leave blank only when the practice database has a single clinic" in page.text

    as_site_admin = Client()
    verified_login(as_site_admin, site_admin)
    page = as_site_admin.get(f"/admin/financing/location/{main.pk}/change/")
    assert page.status_code == 200 and "Clinics served" in page.text
    assert 'name="pms_clinic_ids"' not in page.text  # shown, not editable

    # The superuser's form edits it, with the model's checks.
    model_admin = admin.site._registry[Location]
    request = RequestFactory().get("/")
    request.user = root
    form_class = model_admin.get_form(request, main)
    data = {f: getattr(main, f) for f in form_class.base_fields if hasattr(main, f)}
    data.update(template=main.template_id, pms_clinic_ids="2 , 3")
    form = form_class(data=data, instance=main)
    assert form.is_valid(), form.errors
    form.save()
    main.refresh_from_db()
    assert main.clinic_ids == ("2", "3") and main.pms_clinic_ids == "2, 3"
    bad = form_class(data={**data, "pms_clinic_ids": "2; 3"}, instance=main)
    assert not bad.is_valid() and "pms_clinic_ids" in bad.errors


def test_the_demo_locations_each_reach_their_own_clinics_demo_patient(sandboxes, settings, tasks):
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    settings.DENTRIX_SANDBOX_URL, settings.CARECREDIT_SANDBOX_URL = sandboxes.dentrix_url, sandboxes.carecredit_url
    call_command("seed_demo", stdout=io.StringIO())
    assert {loc.code: loc.clinic_ids for loc in Location.objects.all()} == {
        "demo-main": ("1",), "demo-north": ("2",), "demo-south": ("3",),
        # each its own product's database, serving its clinic 1
        "demo-enterprise": ("1",), "demo-ascend": ("1",), "demo-eaglesoft": ("1",), "demo-od": ("1",),
    }
    central = APIClient()
    central.force_authenticate(get_user_model().objects.get(username="central"))  # billing at every demo location
    hal = {"patient_id": "1008", "treatment_plan_id": "5008"}  # the sandbox's clinic 2 patient
    refused = post_case(central, hal, location="demo-main")
    assert refused.status_code == 400
    assert refused.json()["errors"]["patient_id"][0] == (
        "Patient 1008 belongs to another clinic of this practice database (clinic 2); this location serves clinic 1."
    )
    assert post_case(central, hal, location="demo-north").status_code == 201
    assert post_case(central, {"patient_id": "1009", "treatment_plan_id": "5009"}, location="demo-south").status_code == 201
