"""A plan is financed once per practice database, whichever location asks (promise 9).

The demo's locations (and a Dentrix Enterprise's clinics) share one connector: a second
location starting a case for a plan another location already holds would send the patient
a second credit application. Intake refuses it with a 400, the database's constraint holds
when two requests race past that check, and the 400 names the other case only to a caller
who may see it.
"""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from financing import partners
from financing.models import CaseState, FinancedCase
from financing.services import capture as capture_module
from tests.conftest import make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def post_case(user, location_code, patient):
    api = APIClient()
    api.force_authenticate(user)
    body = {"location": location_code, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}
    return api.post("/api/v1/cases/", body, format="json")


@pytest.fixture
def north(template, sandboxes):
    """A second location behind the same Dentrix connector as `location` ("main")."""
    return make_location(template, sandboxes, code="north")


def test_locations_sharing_a_connector_share_one_practice_database(location, north):
    assert partners.pms_identity(location) == partners.pms_identity(north)


def test_a_second_location_on_the_same_connector_is_refused_and_sends_no_second_application(sandboxes, location, north, tasks):
    at_main, at_north = make_user("main-coord", location), make_user("north-coord", north)
    patient = sandboxes.new_patient("Thompson")
    first = post_case(at_main, "main", patient)
    assert first.status_code == 201
    tasks.drain(include_delayed=False)
    assert len(sandboxes.carecredit_applications()) == 1

    second = post_case(at_north, "north", patient)

    assert second.status_code == 400
    assert second.json()["errors"] == {
        "treatment_plan_id": [f"Treatment plan {patient['treatment_plan_id']} already has a financing case at another location of this practice."]
    }
    assert FinancedCase.objects.count() == 1
    assert FinancedCase.history.exclude(id=first.json()["id"]).count() == 0
    assert tasks.queue == []
    assert len(sandboxes.carecredit_applications()) == 1


def test_the_refusal_names_the_other_case_only_to_a_caller_who_may_see_it(sandboxes, location, north, tasks):
    at_main, at_north = make_user("main-coord", location), make_user("north-coord", north)
    central = make_user("central", location)
    central.memberships.create(location=north, role="billing")
    patient = sandboxes.new_patient("Thompson")
    held = post_case(at_main, "main", patient).json()
    plan = patient["treatment_plan_id"]

    hidden = post_case(at_north, "north", patient)
    assert hidden.json()["errors"]["treatment_plan_id"][0] == f"Treatment plan {plan} already has a financing case at another location of this practice."
    assert held["reference"] not in hidden.content.decode() and "Main" not in hidden.content.decode()

    shown = post_case(central, "north", patient)
    assert shown.status_code == 400
    assert shown.json()["errors"]["treatment_plan_id"][0] == (
        f"Treatment plan {plan} already has a financing case: {held['reference']} (captured) at Main Dental (main)."
    )

    again = post_case(at_main, "main", patient)
    assert again.json()["errors"]["treatment_plan_id"][0] == (
        f"Treatment plan {plan} already has a financing case: {held['reference']} (captured) at Main Dental (main)."
    )
    # Ids, a reference and a location: nothing of the patient.
    for answer in (hidden, shown, again):
        assert "Thompson" not in answer.content.decode() and "Ava" not in answer.content.decode()
    assert FinancedCase.objects.count() == 1


def test_the_database_holds_one_open_case_per_practice_plan_across_locations(location, north, template, sandboxes):
    plan = {"patient_id": "1001", "treatment_plan_id": "5001", "promotion": "deferred_12"}
    held = FinancedCase.objects.create(location=location, **plan)

    with pytest.raises(IntegrityError), transaction.atomic():
        FinancedCase.objects.create(location=north, **plan)
    assert held.pms_identity == partners.pms_identity(location)

    # A case that ends without financing releases the plan; a completed one keeps it.
    FinancedCase.objects.filter(pk=held.pk).update(state=CaseState.DECLINED)
    again = FinancedCase.objects.create(location=north, **plan)
    FinancedCase.objects.filter(pk=again.pk).update(state=CaseState.COMPLETED)
    with pytest.raises(IntegrityError), transaction.atomic():
        FinancedCase.objects.create(location=location, **plan)

    # Another practice database's plan 5001 is another plan.
    elsewhere = make_location(template, sandboxes, code="elsewhere", pms_base_url="http://dentrix.other-practice.example")
    FinancedCase.objects.create(location=elsewhere, **plan)
    assert FinancedCase.objects.exclude(state=CaseState.DECLINED).count() == 2


def test_two_requests_racing_for_one_plan_make_one_case_and_one_clean_400(sandboxes, location, north, tasks, monkeypatch):
    at_main, at_north = make_user("main-coord", location), make_user("north-coord", north)
    patient = sandboxes.new_patient("Thompson")
    # Each request waits for the other at its insert, so both have passed intake's check
    # and only the database's constraint is left to refuse one.
    barrier = threading.Barrier(2, timeout=20)

    class InsertTogether:
        def atomic(self, *args, **kwargs):
            barrier.wait()
            return transaction.atomic(*args, **kwargs)

    monkeypatch.setattr(capture_module, "transaction", InsertTogether())
    answers = {}

    def request(user, code):
        try:
            answers[code] = post_case(user, code, patient)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=args) for args in ((at_main, "main"), (at_north, "north"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(a.status_code for a in answers.values()) == [201, 400]
    [refused] = [a for a in answers.values() if a.status_code == 400]
    assert refused.json()["errors"]["treatment_plan_id"][0].endswith("already has a financing case at another location of this practice.")
    assert FinancedCase.objects.count() == 1
    assert not barrier.broken


def test_losing_the_race_at_the_insert_is_the_same_clean_400(sandboxes, location, north, tasks, monkeypatch):
    at_north = make_user("north-coord", north)
    patient = sandboxes.new_patient("Thompson")
    ids = {"patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}

    class WinnerCommitsAfterTheCheck:
        """capture's `transaction`: another location's case for the plan commits between
        this request's check and its insert."""

        def atomic(self, *args, **kwargs):
            FinancedCase.objects.create(location=location, promotion="deferred_12", **ids)
            return transaction.atomic(*args, **kwargs)

    monkeypatch.setattr(capture_module, "transaction", WinnerCommitsAfterTheCheck())

    refused = post_case(at_north, "north", patient)

    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "treatment_plan_id": [f"Treatment plan {ids['treatment_plan_id']} already has a financing case at another location of this practice."]
    }
    assert list(FinancedCase.objects.values_list("location__code", flat=True)) == ["main"]
    assert tasks.queue == []
