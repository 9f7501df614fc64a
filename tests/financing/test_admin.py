"""The first-cut billing console: pages render, scoped to the staff member's locations."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from financing import services
from financing.models import CaseState, FinancedCase
from tests.conftest import make_location, make_user, verified_login

pytestmark = pytest.mark.django_db(transaction=True)


def staff(username, location, role="billing"):
    user = make_user(username, location, role=role, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_financedcase", "change_financedcase", "view_location"]))
    client = Client()
    verified_login(client, user)
    return user, client


def test_billing_sees_only_their_locations_cases_and_can_resume_one(sandboxes, location, template, coordinator, tasks):
    north = make_location(template, sandboxes, code="north")
    patient = sandboxes.new_patient("Thompson")
    mine = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    other_patient = sandboxes.new_patient("Rivera")
    theirs = services.capture_case(location=north, patient_id=other_patient["patient_id"], treatment_plan_id=other_patient["treatment_plan_id"])
    tasks.queue.clear()
    _, client = staff("biller", location)

    listing = client.get("/admin/financing/financedcase/")
    assert listing.status_code == 200
    assert mine.reference in listing.text and theirs.reference not in listing.text
    detail = client.get(f"/admin/financing/financedcase/{mine.pk}/change/")
    assert detail.status_code == 200 and "D2740" in detail.text
    assert client.get(f"/admin/financing/financedcase/{theirs.pk}/change/").status_code == 302  # "doesn't exist" redirect
    assert client.get(f"/admin/financing/financedcase/{mine.pk}/history/").status_code == 200

    FinancedCase.objects.filter(pk__in=[mine.pk, theirs.pk]).update(state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.CAPTURED)
    response = client.post(
        "/admin/financing/financedcase/",
        {"action": "resume_cases", "_selected_action": [mine.pk, theirs.pk]},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state == CaseState.CAPTURED and theirs.state == CaseState.NEEDS_ATTENTION
    assert tasks.names() == ["financing.send_application"]  # only the case this user may touch


def test_case_fields_owned_by_the_state_machine_are_read_only(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    _, client = staff("biller", location)
    client.post(f"/admin/financing/financedcase/{case.pk}/change/", {"state": "completed", "plan_total": "1.00"})
    case.refresh_from_db()
    assert case.state == CaseState.CAPTURED and str(case.plan_total) == "2500.00"
