"""Money, dates and times are shown one way everywhere: `$1,234.56`, `Dec 31, 2026`, and
every moment on its location's wall clock with the zone's label (`Dec 1, 2026, 3:41 PM EST`).

The expected strings are written out by hand, not computed with the code under test."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.template.loader import render_to_string

from financing import display, services
from financing.digest import digest_for
from financing.models import CaseState, Correction, FinancedCase, LedgerNote, Membership, ShadowComparison
from financing.services.ledger_note import prepare_note
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db

NY, LA = "America/New_York", "America/Los_Angeles"
DECIDED = datetime(2026, 12, 1, 20, 41, tzinfo=UTC)  # 3:41 PM in New York, 12:41 PM in Los Angeles


# --- the one formatting module ---------------------------------------------------------------


@pytest.mark.parametrize(
    "moment, zone, shown",
    [
        (DECIDED, NY, "Dec 1, 2026, 3:41 PM EST"),
        (DECIDED, LA, "Dec 1, 2026, 12:41 PM PST"),
        (datetime(2026, 12, 2, 4, 30, tzinfo=UTC), NY, "Dec 1, 2026, 11:30 PM EST"),  # the date is the local one
        (datetime(2026, 7, 4, 16, 5, tzinfo=UTC), NY, "Jul 4, 2026, 12:05 PM EDT"),
        (datetime(2026, 7, 4, 16, 5, tzinfo=UTC), LA, "Jul 4, 2026, 9:05 AM PDT"),
        (datetime(2026, 1, 1, 5, 0, tzinfo=UTC), NY, "Jan 1, 2026, 12:00 AM EST"),
        # Spring forward (Mar 8, 2026, 2:00 AM local): one minute apart, an hour apart on the wall.
        (datetime(2026, 3, 8, 6, 59, tzinfo=UTC), NY, "Mar 8, 2026, 1:59 AM EST"),
        (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), NY, "Mar 8, 2026, 3:00 AM EDT"),
        (datetime(2026, 3, 8, 9, 59, tzinfo=UTC), LA, "Mar 8, 2026, 1:59 AM PST"),
        (datetime(2026, 3, 8, 10, 0, tzinfo=UTC), LA, "Mar 8, 2026, 3:00 AM PDT"),
        # Fall back (Nov 1, 2026): 1:30 AM happens twice; only the label tells which.
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), NY, "Nov 1, 2026, 1:30 AM EDT"),
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), NY, "Nov 1, 2026, 1:30 AM EST"),
        (datetime(2026, 11, 1, 8, 30, tzinfo=UTC), LA, "Nov 1, 2026, 1:30 AM PDT"),
        (datetime(2026, 11, 1, 9, 30, tzinfo=UTC), LA, "Nov 1, 2026, 1:30 AM PST"),
        # A zone the database does not know: UTC, and it says so.
        (DECIDED, "Mars/Olympus_Mons", "Dec 1, 2026, 8:41 PM UTC"),
        (DECIDED, None, "Dec 1, 2026, 8:41 PM UTC"),
    ],
)
def test_a_moment_is_shown_on_the_locations_wall_clock_with_its_label(moment, zone, shown):
    assert display.when(moment, zone) == shown


def test_a_location_row_is_its_own_zone(template):
    west = plain_location(template, "west", timezone=LA)
    assert display.when(DECIDED, west) == "Dec 1, 2026, 12:41 PM PST"
    assert display.day(datetime(2026, 12, 2, 4, 30, tzinfo=UTC), west) == "Dec 1, 2026"


@pytest.mark.parametrize(
    "amount, shown",
    [
        (D("1165.00"), "$1,165.00"),
        (D("1560"), "$1,560.00"),
        (D("1234567.8"), "$1,234,567.80"),
        (D("0"), "$0.00"),
        (D("-5.00"), "-$5.00"),
        ("208.34", "$208.34"),  # as a schedule keeps it
        (None, "—"),
    ],
)
def test_money_is_dollars_with_thousands_and_cents(amount, shown):
    assert display.money(amount) == shown


def test_dates_lengths_and_terms_have_one_shape():
    assert display.day(date(2026, 12, 31)) == "Dec 31, 2026"
    assert display.day("2027-01-05") == "Jan 5, 2027"
    assert display.day(None) == "—"
    assert [display.span(timedelta(minutes=m)) for m in (1, 15, 60, 90, 1440 + 61)] == [
        "1 minute", "15 minutes", "1 hour", "1 hour 30 minutes", "1 day 1 hour 1 minute",
    ]
    assert display.of_kind("money", "1560.00") == "$1,560.00"
    assert display.of_kind("date", "2026-12-31") == "Dec 31, 2026"
    assert display.of_kind("percent", "17.9") == "17.90%"
    assert display.of_kind("count", 12) == "12"
    assert display.agreement_term("first_payment_due", "2026-12-15") == "Dec 15, 2026"
    assert display.agreement_term("payment_amount", "208.00") == "$208.00"
    assert display.agreement_term("annual_finance_charge_pct", "0.00") == "0.00%"


@pytest.mark.parametrize("typed", ["Jan 15, 2027", "Jan. 15, 2027", "January 15, 2027", "jan 15 2027", "2027-01-15"])
def test_a_date_is_read_the_way_it_is_shown(typed):
    assert display.parse_day(typed) == date(2027, 1, 15)


@pytest.mark.parametrize("typed", ["Jux 15, 2027", "Janaury 15, 2027", "Feb 30, 2027", "15/01/2027", ""])
def test_a_date_that_is_no_date_is_refused(typed):
    with pytest.raises(ValueError):
        display.parse_day(typed)


# --- where clerks read them --------------------------------------------------------------------


@pytest.fixture
def sites(template):
    return {"east": plain_location(template, "east", timezone=NY), "west": plain_location(template, "west", timezone=LA)}


@pytest.fixture
def central(sites):
    return billing_user("cat", *sites.values())


def decided_case(site, **extra):
    # make_case: decided half-way through `took`, written at the end of it.
    return make_case(site, captured_at=DECIDED - timedelta(minutes=10), took=timedelta(minutes=20), plan_total=D("1560.00"), **extra)


def test_the_case_page_shows_times_on_the_locations_clock_and_money_one_way(sites, central):
    east = decided_case(sites["east"])
    west = decided_case(sites["west"])
    client = console_client(central)

    page = client.get(f"/admin/financing/financedcase/{east.pk}/change/").text
    assert "<tr><th>Decided</th><td>Dec 1, 2026, 3:41 PM EST</td></tr>" in page
    assert "2026-12-01 20:41" not in page and "20:41" not in page
    assert '<tr><th>Plan total</th><td class="money">$1,560.00</td></tr>' in page
    assert "$1560.00" not in page
    assert 'Payment agreement in Dentrix</th><td id="written-to-pms">Written · Payment agreement ID' in page and "· Dec 1, 2026, 3:51 PM EST" in page
    due = (DECIDED - timedelta(minutes=10) + timedelta(days=30)).date()
    assert f'<tr><th>First payment</th><td class="money">{due:%b} {due.day}, {due.year}</td></tr>' in page
    # Django's own rendering of the raw record is on the same clock, in the same format.
    assert "Dec 1, 2026, 3:31 PM EST" in page  # captured_at, read-only field

    page = client.get(f"/admin/financing/financedcase/{west.pk}/change/").text
    assert "<tr><th>Decided</th><td>Dec 1, 2026, 12:41 PM PST</td></tr>" in page
    assert "Dec 1, 2026, 12:31 PM PST" in page

    # The record's history page too: stamped when the test ran, on the location's clock.
    history = client.get(f"/admin/financing/financedcase/{west.pk}/history/").text
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2} [AP]M P[SD]T", history)
    assert " UTC" not in history


def test_the_timeline_and_corrections_show_values_as_the_page_does(sites, central):
    case = decided_case(sites["west"])
    services.record_correction(case.pk, field="recurring_amount", after="$1,300.00", why="Rounded by hand", actor=central)
    services.record_correction(case.pk, field="first_payment_date", after="Jan 15, 2027", why="Patient asked", actor=central)
    page = console_client(central).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    timeline = page[page.index('id="timeline"'):]
    assert "<del>$130.01</del> → <ins>$1,300.00</ins>" in timeline
    assert "<ins>Jan 15, 2027</ins>" in timeline
    assert "PST</td>" in timeline and "UTC</td>" not in timeline
    corrections = page[page.index('id="corrections"'):page.index('id="timeline"')]
    assert "<del>$130.01</del> → <ins>$1,300.00</ins>" in corrections


def test_the_correction_form_shows_and_reads_dates_the_same_way(sites, central):
    case = decided_case(sites["east"])
    arrangement = case.arrangement
    arrangement.first_payment_date = date(2026, 12, 31)
    arrangement.save()
    client = console_client(central)
    form = client.get(f"/admin/financing/financedcase/{case.pk}/correct/").text
    assert "<td>First payment due date</td><td>Dec 31, 2026</td>" in form  # its label, not its field name
    assert "Dec. 31, 2026" not in form and "YYYY-MM-DD" not in form
    assert "dates as Jan 15, 2027" in form
    assert "<td>Payment amount (every payment but the last)</td><td>$130.01</td>" in form

    bad = client.post(f"/admin/financing/financedcase/{case.pk}/correct/", {"field": "first_payment_date", "after": "31/12/2026", "why": "x"})
    assert bad.status_code == 200 and "Enter first payment date as Jan 15, 2027." in bad.text
    assert Correction.objects.count() == 0

    done = client.post(f"/admin/financing/financedcase/{case.pk}/correct/", {"field": "first_payment_date", "after": "Jan 15, 2027", "why": "x"})
    assert done.status_code == 302
    correction = Correction.objects.get()
    assert (correction.before, correction.after) == ("2026-12-31", "2027-01-15")  # stored as ISO, shown as above
    messages = [m.message for m in done.wsgi_request._messages]
    # (The location's PMS is wired to nothing: the record in force could not be read back.)
    assert messages == ["Correction recorded: first payment date Dec 31, 2026 → Jan 15, 2027. "
                        f"Chairside could not confirm which payment agreement Dentrix holds now for guarantor account "
                        f"{case.guarantor_id} (the correction was made to payment agreement {arrangement.pms_arrangement_id}): "
                        "check the account in Dentrix, and record the id it shows as a correction if it changed."]


def test_lists_spanning_locations_show_each_rows_time_on_its_own_clock(sites, central):
    east, west = decided_case(sites["east"]), decided_case(sites["west"])
    for case in (east, west):
        services.record_correction(case.pk, field="first_payment_date", after="2030-01-15", why="x", actor=central)
        ShadowComparison.objects.create(case=case, location=case.location, outcome="match", compared_at=DECIDED)
    Correction.objects.update(created_at=DECIDED)
    client = console_client(central)

    corrections = client.get("/admin/financing/correction/")
    rows = {c.case.reference: c for c in corrections.context["cl"].result_list}
    assert set(rows) == {east.reference, west.reference}
    # The first column is the row's link (a th).
    assert f'/admin/financing/correction/{rows[east.reference].pk}/change/">Dec 1, 2026, 3:41 PM EST</a></th>' in corrections.text
    assert f'/admin/financing/correction/{rows[west.reference].pk}/change/">Dec 1, 2026, 12:41 PM PST</a></th>' in corrections.text

    comparisons = client.get("/admin/financing/shadowcomparison/").text
    assert '<td class="field-compared">Dec 1, 2026, 3:41 PM EST</td>' in comparisons
    assert '<td class="field-compared">Dec 1, 2026, 12:41 PM PST</td>' in comparisons

    cases = client.get("/admin/financing/financedcase/").text
    assert '<td class="field-plan_total_money">$1,560.00</td>' in cases
    assert '<td class="field-financed_money">$1,560.00</td>' in cases
    assert "1560.00<" not in cases


def test_the_ledger_note_is_stamped_on_the_locations_clock(sites):
    east, west = decided_case(sites["east"]), decided_case(sites["west"])
    LedgerNote.objects.filter(case__in=[east, west]).delete()
    for case, stamp in ((east, "Mar 8, 2026, 3:00 AM EDT"), (west, "Mar 7, 2026, 11:00 PM PST")):
        with time_machine.travel(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), tick=False):
            case.refresh_from_db()
            note = prepare_note(case)
        assert note.text.startswith(f"{stamp} CareCredit ")
        due = case.arrangement.first_payment_date
        assert f"first due {due:%b} {due.day}, {due.year}." in note.text
        assert "Financed $1,560.00:" in note.text


def test_the_digest_shows_times_on_each_locations_clock(sites):
    member = billing_user("bea", *sites.values())
    Membership.objects.filter(user=member).update(role=Membership.Role.BILLING)
    stuck = {code: make_case(site, state=CaseState.NEEDS_ATTENTION, reason="x", resume_state="approved") for code, site in sites.items()}
    FinancedCase.objects.filter(pk__in=[c.pk for c in stuck.values()]).update(state_changed_at=DECIDED)
    context = {"digests": digest_for(member, DECIDED + timedelta(days=1)), "attention": 2, "waiting": 0, "day": date(2026, 12, 2), "console_url": "x"}
    body = render_to_string("notifications/daily_digest.txt", context)
    assert f"- {stuck['east'].reference}, since Dec 1, 2026, 3:41 PM EST:" in body
    assert f"- {stuck['west'].reference}, since Dec 1, 2026, 12:41 PM PST:" in body
    assert body.startswith("Chairside daily digest, Dec 2, 2026:")
