"""The console's "Tomorrow's patients", after a day screened over HTTP against the sandboxes:
each row as people read it (time in the location's zone, "Ava T.", money, the result in plain
words, the expiry), scoped to the person's locations, *Start financing* (the capture prefilled
from the plan, a case through the same service as the API, the case page showing the
pre-screen), *Screen again*, *Opt out*, and the permissions and bad input."""

import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission

from financing.models import FinancedCase, Membership, Prescreen, PrescreenOptOut, PrescreenRun
from financing.services.prescreen import RUN_TASK
from tests.conftest import make_user
from tests.console.console_factories import console_client
from tests.financing.prescreening import at, book, new_patient, prescreen_location, start_and_run

pytestmark = pytest.mark.django_db(transaction=True)

COORDINATING = ["view_financedcase", "view_prescreen", "add_financedcase", "change_prescreenrun", "add_prescreenoptout"]


def staff(username, location, perms=COORDINATING, role=Membership.Role.COORDINATOR):
    user = make_user(username, location, role=role, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).strip()


@pytest.fixture
def day(template, sandboxes, tasks):
    """Main Street Dental's Monday, screened on Friday at 6:00 AM EST."""
    location = prescreen_location(template, sandboxes, name="Main Street Dental")
    ava = new_patient(sandboxes, "Thompson", fees=("1250.00", "1250.00"))
    cal = new_patient(sandboxes, "Cardholder-Reyes", first_name="Cal", fees=("1560.00",))
    ben = new_patient(sandboxes, "Decline-Parker", first_name="Ben", fees=("4150.00",))
    book(sandboxes, ava, "2027-03-15T13:00:00Z")  # 9:00 AM EDT
    book(sandboxes, cal, "2027-03-15T14:30:00Z")
    book(sandboxes, ben, "2027-03-15T18:00:00Z")
    with at("2027-03-12T11:00:00Z"):
        start_and_run(tasks)
    return location, {"ava": ava, "cal": cal, "ben": ben}


def test_the_list_reads_as_people_read_it(day, template, sandboxes):
    location, p = day
    cora = staff("cora", location)
    with at("2027-03-12T13:00:00Z"):  # sessions idle out after 30 minutes: signed in at each moment
        response = console_client(cora).get("/admin/tomorrow/")
    assert response.status_code == 200
    page = text(response)
    assert "Main Street Dental · Monday, Mar 15, 2027" in page
    assert "Monday at Main Street Dental: 1 patient pre-qualified up to $2,500.00; 1 existing cardholder with $5,000.00 available." in page
    assert re.search(r"Screened with CareCredit 6:00 AM EST, in [\w ]+: 3 patients, 1 batch\.", page), page
    rows = re.findall(r'<tr data-patient="(\d+)" data-result="(\w+)">', response.content.decode())
    assert rows == [(p["ava"]["patient_id"], "prequalified"), (p["cal"]["patient_id"], "existing_cardholder"), (p["ben"]["patient_id"], "not_prequalified")]
    assert f"9:00 AM EDT Ava T. (PMS id {p['ava']['patient_id']}) $2,500.00 Pre-qualified up to $2,500.00 Apr 11, 2027 Start financing" in page
    assert f"10:30 AM EDT Cal C. (PMS id {p['cal']['patient_id']}) $1,560.00 Existing cardholder: $5,000.00 available — Start financing" in page
    assert "2:00 PM EDT Ben D." in page and "Not pre-qualified: the patient may still apply" in page
    for surname in ("Thompson", "Cardholder-Reyes", "Decline-Parker"):
        assert surname not in response.content.decode()


def test_start_financing_opens_the_capture_prefilled_and_starts_the_case(day, tasks):
    location, p = day
    cora = staff("cora", location)
    ava = Prescreen.objects.get(patient_id=p["ava"]["patient_id"])
    with at("2027-03-15T13:20:00Z"):  # Monday, at the chair
        client = console_client(cora)
        form = client.get(f"/admin/tomorrow/{ava.pk}/start/")
        assert form.status_code == 200
        page = text(form)
        assert f"Treatment plan {p['ava']['treatment_plan_id']} (accepted)" in page
        assert "Plan total $2,500.00" in page
        assert "Pre-screen Pre-qualified up to $2,500.00, until Apr 11, 2027" in page
        assert 'value="deferred_12" selected' in form.content.decode()  # the template's default promotion
        tasks.queue.clear()
        response = client.post(f"/admin/tomorrow/{ava.pk}/start/", {"down_payment": "500.00", "promotion": "deferred_12"})
    case = FinancedCase.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/financing/financedcase/{case.pk}/change/"
    assert (case.patient_id, case.treatment_plan_id, case.plan_total, case.requested_down_payment) == (
        p["ava"]["patient_id"], p["ava"]["treatment_plan_id"], D("2500.00"), D("500.00"),
    )
    assert case.coordinator.username == "cora" and case.location == location
    assert (case.prescreen_outcome, case.prescreen_amount) == ("prequalified", D("2500.00"))
    assert tasks.names() == ["financing.send_application"]
    with at("2027-03-15T13:21:00Z"):
        case_page = text(client.get(f"/admin/financing/financedcase/{case.pk}/change/"))
        listed = text(client.get(f"/admin/tomorrow/?location={location.pk}"))
    assert "Pre-screen Pre-qualified up to $2,500.00 until Apr 11, 2027 (screened Mar 12, 2027, 6:00 AM EST)" in case_page
    # On Monday the page looks at Tuesday (nobody booked); on Friday's, the row leads to its case.
    assert "Main Street Dental · Tomorrow, Mar 16, 2027" in listed and "No list yet." in listed
    with at("2027-03-12T20:00:00Z"):
        friday = console_client(cora).get(f"/admin/tomorrow/?location={location.pk}").content.decode()
    assert f">{case.reference} (captured)</a>" in friday


def test_a_refused_capture_shows_why_and_starts_nothing(day, sandboxes, tasks):
    location, p = day
    cora = staff("cora", location)
    ben = Prescreen.objects.get(patient_id=p["ben"]["patient_id"])
    with at("2027-03-15T13:20:00Z"):
        client = console_client(cora)
        negative = client.post(f"/admin/tomorrow/{ben.pk}/start/", {"down_payment": "-5", "promotion": "deferred_12"})
        covers = client.post(f"/admin/tomorrow/{ben.pk}/start/", {"down_payment": "4150.00", "promotion": "deferred_12"})
        junk = client.post(f"/admin/tomorrow/{ben.pk}/start/", {"down_payment": "lots", "promotion": "nope"})
    assert negative.status_code == covers.status_code == junk.status_code == 200
    assert "Ensure this value is greater than or equal to 0.00." in text(negative)
    assert "The down payment ($4,150.00) covers the whole plan ($4,150.00): there is nothing to finance." in text(covers)
    assert "Select a valid choice." in text(junk)
    assert not FinancedCase.objects.exists()


def test_scope_and_permissions(day, template, sandboxes):
    location, p = day
    elsewhere = prescreen_location(template, sandboxes, "north", pms_clinic_ids="9")
    nora = staff("nora", elsewhere)
    ava = Prescreen.objects.get(patient_id=p["ava"]["patient_id"])
    with at("2027-03-12T13:00:00Z"):
        outsider = console_client(nora)
        theirs = outsider.get(f"/admin/tomorrow/?location={location.pk}")
        assert theirs.status_code == 200 and "None of your locations matches." in text(theirs)
        assert "Ava T." not in text(theirs)
        assert outsider.get(f"/admin/tomorrow/{ava.pk}/start/").status_code == 404
        assert outsider.post(f"/admin/tomorrow/{ava.pk}/opt-out/").status_code == 404
        assert outsider.post("/admin/tomorrow/rerun/", {"location": location.pk}).status_code == 404
        for junk in ("abc", "²", "9" * 30, ""):
            assert outsider.get("/admin/tomorrow/", {"location": junk}).status_code == 200
        # Billing sees the list but starts nothing.
        viewer = console_client(staff("bill", location, perms=["view_prescreen", "view_financedcase"], role=Membership.Role.BILLING))
        page = viewer.get("/admin/tomorrow/")
        assert page.status_code == 200 and "Start financing" not in text(page) and "Screen again" not in text(page)
        assert viewer.get(f"/admin/tomorrow/{ava.pk}/start/").status_code == 403
        assert viewer.post(f"/admin/tomorrow/{ava.pk}/opt-out/").status_code == 403
        assert viewer.post("/admin/tomorrow/rerun/", {"location": location.pk}).status_code == 403
        nobody = console_client(staff("nobody", location, perms=[]))
        assert nobody.get("/admin/tomorrow/").status_code == 403
    assert not FinancedCase.objects.exists() and not PrescreenOptOut.objects.exists()


def test_opt_out_and_screen_again(day, tasks):
    location, p = day
    cora = staff("cora", location)
    cal = Prescreen.objects.get(patient_id=p["cal"]["patient_id"])
    with at("2027-03-12T13:00:00Z"):
        client = console_client(cora)
        assert client.get(f"/admin/tomorrow/{cal.pk}/opt-out/").status_code == 302  # a GET changes nothing
        assert not PrescreenOptOut.objects.exists()
        response = client.post(f"/admin/tomorrow/{cal.pk}/opt-out/")
        assert response.status_code == 302
        cal.refresh_from_db()
        assert (cal.result, cal.amount, cal.patient_short_name, cal.raw_status) == ("opted_out", None, "", "")
        opt = PrescreenOptOut.objects.get()
        assert (opt.location, opt.patient_id, opt.created_by.username) == (location, p["cal"]["patient_id"], "cora")
        tasks.queue.clear()
        again = client.post("/admin/tomorrow/rerun/", {"location": location.pk})
        assert again.status_code == 302 and again["Location"] == f"/admin/tomorrow/?location={location.pk}"
        assert [t.name for t in tasks.queue] == [RUN_TASK]
        from tests.financing.prescreening import run_day

        run_day(tasks)
    # The rerun kept the opt-out: Cal was not read nor sent again.
    cal.refresh_from_db()
    assert cal.result == "opted_out" and cal.patient_short_name == ""
    assert PrescreenRun.objects.get().status == "done"
    assert Prescreen.objects.get(patient_id=p["ava"]["patient_id"]).result == "prequalified"
