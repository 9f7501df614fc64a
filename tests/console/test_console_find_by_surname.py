"""A case is found by the patient's surname through a keyed search token taken at capture:
names stay encrypted, nothing is decrypted to search, and the guarantor is named as billing
staff read them."""

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import blind_index
from financing import services
from financing.models import FinancedCase
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db


def patient_reads(sandboxes, patient_id):
    return [r for r in sandboxes.dentrix_requests("GET", f"/v1/patients/{patient_id}") if r["path"] == f"/v1/patients/{patient_id}"]


def listed(response):
    return [c.reference for c in response.context["cl"].result_list]


@pytest.mark.django_db(transaction=True)
def test_capture_keeps_a_surname_token_and_the_guarantors_short_name(sandboxes, location, tasks):
    coordinator = make_user("cora", location)
    parent = sandboxes.new_patient("García-Ortiz", first_name="Mateo")
    child = sandboxes.new_patient("García-Ortiz", first_name="Lucía", guarantor_id=parent["patient_id"])
    case = services.capture_case(location=location, patient_id=child["patient_id"], treatment_plan_id=child["treatment_plan_id"], actor=coordinator)
    case = FinancedCase.objects.get(pk=case.pk)
    assert case.patient_short_name == "Lucía G."
    assert (case.guarantor_id, case.guarantor_short_name) == (parent["patient_id"], "Mateo G.")
    assert case.surname_token == blind_index.token("surname", "garcia ortiz")
    assert len(case.surname_token) == 64 and "garc" not in case.surname_token.lower()
    # The guarantor was asked for once, by id, and the application step does not ask again.
    assert len(patient_reads(sandboxes, parent["patient_id"])) == 1
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    assert case.application_id  # the application step ran
    assert case.guarantor_short_name == "Mateo G."
    assert len(patient_reads(sandboxes, parent["patient_id"])) == 1
    # Neither name nor token is in the history table (they are PHI, or derived from it).
    history = case.history.model._meta
    assert {"patient_short_name", "guarantor_short_name", "surname_token"}.isdisjoint(f.name for f in history.fields)


def test_a_patient_who_is_their_own_guarantor_costs_no_extra_lookup(sandboxes, location, tasks):
    coordinator = make_user("cora", location)
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    assert case.guarantor_short_name == case.patient_short_name == "Ava T."
    assert len(patient_reads(sandboxes, patient["patient_id"])) == 1


@pytest.mark.django_db(transaction=True)
def test_a_guarantor_the_pms_cannot_name_now_never_stops_the_case(sandboxes, location, tasks):
    coordinator = make_user("cora", location)
    parent = sandboxes.new_patient("Nguyen", first_name="Bao")
    child = sandboxes.new_patient("Nguyen", first_name="Linh", guarantor_id=parent["patient_id"])
    sandboxes.dentrix_fault(method="GET", path_prefix=f"/v1/patients/{parent['patient_id']}", mode="error", status=503, count=1)
    case = services.capture_case(location=location, patient_id=child["patient_id"], treatment_plan_id=child["treatment_plan_id"], actor=coordinator)
    assert (case.patient_short_name, case.guarantor_short_name) == ("Linh N.", "")
    tasks.drain(include_delayed=False)  # the application step reads the patient again, and asks once more
    case.refresh_from_db()
    assert case.application_id
    assert case.guarantor_short_name == "Bao N."


def test_the_case_list_finds_a_case_by_surname_in_any_case_or_accent_without_decrypting_rows(template):
    main = plain_location(template, "main")
    north = plain_location(template, "north")
    ann = billing_user("ann", main)
    garcia = make_case(main)
    other = make_case(main)
    theirs = make_case(north)
    for case, surname in ((garcia, "García"), (other, "Thompson"), (theirs, "Garcia")):
        FinancedCase.objects.filter(pk=case.pk).update(surname_token=blind_index.token("surname", surname))
    old = make_case(main)  # captured before tokens existed: no token, never matched
    client = console_client(ann)
    for term in ("garcia", "GARCÍA", " García "):
        assert listed(client.get("/admin/financing/financedcase/", {"q": term})) == [garcia.reference], term
    assert listed(client.get("/admin/financing/financedcase/", {"q": "Garc"})) == []  # whole surnames only
    assert old.reference not in listed(client.get("/admin/financing/financedcase/", {"q": "garcia"}))
    # One indexed equality on the token column; no query reads every row to decrypt it.
    with CaptureQueriesContext(connection) as queries:
        client.get("/admin/financing/financedcase/", {"q": "garcia"})
    listing_sql = [q["sql"] for q in queries if "financing_financedcase" in q["sql"] and "surname_token" in q["sql"]]
    assert listing_sql and all('"surname_token" IN' in sql for sql in listing_sql)
    # The reference and PMS id searches still work beside it.
    assert listed(client.get("/admin/financing/financedcase/", {"q": other.reference.lower()})) == [other.reference]
    assert listed(client.get("/admin/financing/financedcase/", {"q": other.patient_id})) == [other.reference]


def test_a_rotated_search_key_still_finds_the_cases_tokened_with_the_old_one(template, settings):
    main = plain_location(template, "main")
    case = make_case(main)
    FinancedCase.objects.filter(pk=case.pk).update(surname_token=blind_index.token("surname", "Okafor"))
    settings.SEARCH_TOKEN_KEYS = ["a-new-key", *settings.SEARCH_TOKEN_KEYS]
    assert blind_index.token("surname", "Okafor") != FinancedCase.objects.get(pk=case.pk).surname_token
    client = console_client(billing_user("ann", main))
    assert listed(client.get("/admin/financing/financedcase/", {"q": "okafor"})) == [case.reference]


def test_deploy_check_refuses_the_demo_search_key(settings):
    settings.SEARCH_TOKEN_KEYS = [settings.SEARCH_TOKEN_DEMO_KEY]
    assert "chairside.E004" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.SEARCH_TOKEN_KEYS = ["a-long-random-secret-of-our-own"]
    assert "chairside.E004" not in {m.id for m in run_checks(include_deployment_checks=True)}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("garcia", "García"), ("OBRIEN", "O'Brien"), ("smith jones", "Smith-Jones"), ("strasse", "Straße"), ("nguyen", "Nguyễn")],
)
def test_surnames_meet_whatever_the_case_accents_or_punctuation(typed, stored):
    assert blind_index.tokens("surname", typed) == [blind_index.token("surname", stored)]


def test_tokens_are_keyed_and_kept_apart_by_purpose(settings):
    assert blind_index.token("surname", "Thompson") != blind_index.token("first_name", "Thompson")
    before = blind_index.token("surname", "Thompson")
    settings.SEARCH_TOKEN_KEYS = ["another-key"]
    assert blind_index.token("surname", "Thompson") != before
    assert blind_index.token("surname", " - ' ") == "" and blind_index.tokens("surname", "") == []
