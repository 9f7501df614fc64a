""""Needs you today", the console's landing page: each kind of work of the day with the right
cases, oldest first, per location the person covers and never another's; assignment, internal
notes and shadow reviews, each credited to the person."""

import itertools
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from financing import display, services, worklist
from financing.services import audit
from financing.models import CaseNote, CaseState, FinancedCase, ShadowComparison
from notifications.models import Notification
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db
D = Decimal
_keys = itertools.count(1)

LONG_REASON = (
    "Guarantor account 3001 already has an active payment agreement (Dentrix id 7001), and Dentrix allows only one "
    "active payment agreement per guarantor account. Close or adjust the existing agreement in Dentrix (Ledger → "
    "Payment Agreement), check that the down payment and the first due date still match what the patient accepted, "
    "then resume this case from here."
)


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def at(case, **fields):
    """Set bookkeeping columns as the flow would (update(): no history row)."""
    FinancedCase.objects.filter(pk=case.pk).update(**fields)
    case.refresh_from_db()
    return case


def notify(case, status, *, created, template="case_approved", channel="email", error=""):
    n = Notification.objects.create(
        dedupe_key=f"test:{next(_keys)}", reference=case.reference, channel=channel, recipient="cora@example.com",
        template=template, body="b", status=status, error=error,
    )
    Notification.objects.filter(pk=n.pk).update(created_at=created)
    return n


def compare(case, *, reviewed=False, outcome="mismatch", compared=None):
    return ShadowComparison.objects.create(
        case=case, location=case.location, outcome=outcome, compared_at=compared or case.captured_at,
        discrepancies=[{"field": "first_payment_due", "chairside": "2026-12-01", "dentrix": "2026-12-15"}] if outcome == "mismatch" else [],
        discrepancy_count=1 if outcome == "mismatch" else 0, reviewed_at=timezone.now() if reviewed else None,
    )


def work_at(location):
    """One location's day: cases of every kind, some twice (to check the order), and near
    misses that must not count."""
    na = lambda **kw: make_case(location, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.APPROVED, **kw)  # noqa: E731
    cases = {
        "na_new": at(na(reason="Dentrix refused the note: too long."), state_changed_at=ago(hours=1)),
        "na_old": at(na(reason=LONG_REASON), state_changed_at=ago(days=3)),
        "retry": at(make_case(location, state=CaseState.APPROVED), last_error="Dentrix did not answer in time (503).",
                    step_attempts=3, next_attempt_at=timezone.now() + timedelta(seconds=40), state_changed_at=ago(hours=2)),
        # A failed poll of a waiting case is not a failing step: the "waiting" kind covers it.
        "poll_failed": at(make_case(location, state=CaseState.AWAITING_DECISION), last_error="Decision lookup failed: 503",
                          application_sent_at=ago(hours=3)),
        "wait_new": at(make_case(location, state=CaseState.APPLICATION_SENT), application_sent_at=ago(days=2)),
        "wait_old": at(make_case(location, state=CaseState.AWAITING_DECISION), application_sent_at=ago(days=4)),
        "wait_fresh": at(make_case(location, state=CaseState.AWAITING_DECISION), application_sent_at=ago(hours=20)),
        # Waiting for the treatment to be posted is nobody's work, until it has waited unusually long.
        "treatment_late": at(make_case(location, state=CaseState.AWAITING_PRODUCTION), production_awaited_at=ago(days=31),
                             last_error="Checking Dentrix for the posted treatment failed: Dentrix is unavailable (HTTP 503)"),
        "treatment_due": at(make_case(location, state=CaseState.AWAITING_PRODUCTION), production_awaited_at=ago(days=29)),
        "failed": make_case(location),
        "stuck": make_case(location),
        "resent": make_case(location),
        "queued_now": make_case(location),
        "alert_failed": make_case(location),
        "shadow": make_case(location, shadow=True),
        "shadow_reviewed": make_case(location, shadow=True),
        "shadow_match": make_case(location, shadow=True),
        "done": make_case(location),
    }
    notify(cases["failed"], "undelivered", created=ago(hours=5), channel="sms", error="30003 Unreachable destination handset")
    notify(cases["stuck"], "queued", created=ago(hours=2))
    notify(cases["resent"], "failed", created=ago(hours=6))
    notify(cases["resent"], "sent", created=ago(hours=1))  # the resend went out: settled
    notify(cases["queued_now"], "queued", created=ago(minutes=10))  # still on its way
    notify(cases["alert_failed"], "failed", created=ago(hours=3), template="case_needs_attention")  # not a confirmation
    compare(cases["shadow"], compared=ago(days=1))
    compare(cases["shadow_reviewed"], reviewed=True)
    compare(cases["shadow_match"], outcome="match")
    return cases


EXPECTED = {
    "needs_attention": ["na_old", "na_new"],
    "retrying": ["retry"],
    "waiting": ["wait_old", "wait_new"],
    "production_overdue": ["treatment_late"],
    "undelivered": ["failed", "stuck"],
    "shadow": ["shadow"],
}


@pytest.fixture
def day(template):
    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Family Dentistry")
    return {"main": main, "north": north, "mine": work_at(main), "theirs": work_at(north)}


def groups(response):
    return {g.kind.key: [item.case.reference for item in g.items] for g in response.context["groups"]}


def test_the_console_opens_on_the_work_of_the_day_oldest_first_with_the_rest_of_the_index(day):
    ann = billing_user("ann", day["main"])
    page = console_client(ann).get("/admin/")
    assert page.status_code == 200
    assert page.context["title"] == "Needs you today"
    mine = day["mine"]
    assert groups(page) == {key: [mine[name].reference for name in names] for key, names in EXPECTED.items()}
    text = page.text
    # The whole reason, not a cut of it; what failed and why; what differs, in words.
    assert LONG_REASON in text
    assert "Writing the payment agreement to Dentrix, attempt 3: Dentrix did not answer in time (503)." in text
    assert "Approval confirmation by SMS: not delivered (30003 Unreachable destination handset)" in text
    assert "Approval confirmation by Email: queued for over an hour" in text
    assert "First payment due: Chairside Dec 1, 2026, Dentrix Dec 15, 2026" in text
    assert "Waiting on CareCredit for over a day" in text
    assert "Treatment not posted after 30 days" in text
    assert (f"Approved, waiting for treatment plan {mine['treatment_late'].treatment_plan_id} to be posted in Dentrix: has "
            "the patient had the treatment?") in text
    # Each row links to its case; the counts link to the list filtered the same way.
    assert f'href="/admin/financing/financedcase/{mine["na_old"].pk}/change/"' in text
    assert f'href="/admin/financing/financedcase/?attention=waiting&amp;location={day["main"].pk}">2<' in text
    # The rest of the admin index is still there.
    assert 'id="everything-else"' in text and "/admin/financing/correction/" in text and "/admin/financing/location/" in text


def test_another_locations_work_never_shows_nor_counts(day):
    ann = billing_user("ann", day["main"])
    client = console_client(ann)
    page = client.get("/admin/")
    for case in day["theirs"].values():
        assert case.reference not in page.text
    assert [row["location"].code for row in page.context["rows"]] == ["main"]
    assert [n for n, _ in page.context["totals"]] == [2, 1, 2, 1, 2, 1]
    assert page.context["grand_total"] == 9
    assert "Northside" not in page.text
    # Asking for the other location by id shows nothing of it.
    other = client.get(f"/admin/?location={day['north'].pk}")
    assert other.context["rows"] == [] and other.context["grand_total"] == 0
    assert all(not g.items for g in other.context["groups"])
    for case in day["theirs"].values():
        assert case.reference not in other.text


def test_a_central_biller_sees_each_location_counted_apart_and_can_narrow_to_one(day):
    cat = billing_user("cat", day["main"], day["north"])
    client = console_client(cat)
    page = client.get("/admin/")
    cells = {row["location"].code: [n for n, _ in row["cells"]] for row in page.context["rows"]}
    assert cells == {"main": [2, 1, 2, 1, 2, 1], "north": [2, 1, 2, 1, 2, 1]}
    assert page.context["grand_total"] == 18
    oldest = groups(page)["needs_attention"]
    # Oldest first across locations: both three-day-old cases before both one-hour-old ones.
    assert set(oldest[:2]) == {day["mine"]["na_old"].reference, day["theirs"]["na_old"].reference}
    narrowed = client.get(f"/admin/?location={day['north'].pk}")
    assert groups(narrowed)["needs_attention"] == [day["theirs"]["na_old"].reference, day["theirs"]["na_new"].reference]
    assert day["mine"]["na_old"].reference not in narrowed.text


def test_each_group_shows_its_oldest_and_says_how_many_more(day, monkeypatch):
    monkeypatch.setattr(worklist, "LIST_LIMIT", 1)
    monkeypatch.setattr(worklist.oldest, "__defaults__", (1,))
    page = console_client(billing_user("ann", day["main"])).get("/admin/")
    attention = next(g for g in page.context["groups"] if g.kind.key == "needs_attention")
    assert [i.case.reference for i in attention.items] == [day["mine"]["na_old"].reference]
    assert attention.more == 1
    assert f'<a href="/admin/financing/financedcase/?attention=needs_attention">and 1 more</a>' in page.text


@pytest.mark.parametrize("key", list(EXPECTED))
def test_the_case_list_filters_by_each_kind_as_the_page_counts_it(day, key):
    client = console_client(billing_user("ann", day["main"]))
    listing = client.get(f"/admin/financing/financedcase/?attention={key}")
    assert listing.status_code == 200
    assert {c.reference for c in listing.context["cl"].result_list} == {day["mine"][name].reference for name in EXPECTED[key]}


def test_an_empty_day_says_so_and_a_person_without_case_access_sees_the_index_only(template):
    main = plain_location(template, "main")
    make_case(main)
    client = console_client(billing_user("ann", main))
    page = client.get("/admin/")
    assert page.context["grand_total"] == 0
    assert "No case is waiting for a person." in page.text and "Every confirmation went out." in page.text
    viewer = console_client(billing_user("vic", main, perms=["view_location"]))
    index = viewer.get("/admin/")
    assert index.status_code == 200 and "groups" not in index.context
    assert "/admin/financing/location/" in index.text


def test_signing_in_lands_on_needs_you_today(day, client):
    assert client.get("/admin/").status_code == 302  # anonymous: to the sign-in page
    assert client.get("/admin/").url.startswith("/admin/login/")


# --- assignment, notes, reviews -------------------------------------------------------------


def test_a_clerk_assigns_a_case_to_themselves_and_gives_it_back_credited_on_the_timeline(day):
    ann = billing_user("ann", day["main"])
    bob = billing_user("bob", day["main"])
    case = day["mine"]["na_old"]
    client = console_client(ann)
    url = f"/admin/financing/financedcase/{case.pk}/"

    response = client.post(url + "assign/")
    assert response.status_code == 302 and response.url == url + "change/"
    case.refresh_from_db()
    assert (case.assigned_to, case.state) == (ann, CaseState.NEEDS_ATTENTION)  # the state is untouched
    page = client.get(url + "change/")
    assert "Assigned to <strong>ann</strong>" in page.text and 'id="unassign"' in page.text
    # One line on the timeline with the person, the change folded into it; one entry in the admin's log.
    entry = next(e for e in page.context["story"].timeline if e.kind == "action")
    assert (entry.what, entry.who) == ("Assigned to ann", "ann")
    assert ("assigned to", "—", "ann") in entry.changes
    assert LogEntry.objects.filter(user=ann, object_id=str(case.pk), change_message="Assigned to ann").count() == 1

    # On the lists, and the "Assigned to me" filter.
    mine = client.get("/admin/financing/financedcase/?assigned=me")
    assert [c.reference for c in mine.context["cl"].result_list] == [case.reference]
    assert list(console_client(bob).get("/admin/financing/financedcase/?assigned=me").context["cl"].result_list) == []
    assert ">ann</td>" in client.get("/admin/").text  # on "Needs you today" too

    # A colleague takes it over; then gives it back.
    bobs = console_client(bob)
    bobs.post(url + "assign/")
    bobs.post(url + "unassign/")
    case.refresh_from_db()
    assert case.assigned_to is None
    whats = [(e.what, e.who) for e in bobs.get(url + "change/").context["story"].timeline if e.kind == "action"]
    assert whats == [("Assigned to ann", "ann"), ("Assigned to bob (was ann)", "bob"), ("Unassigned (was bob)", "bob")]
    # No separate anonymous "Case changed" lines: each history row is folded into its action.
    assert not [e for e in bobs.get(url + "change/").context["story"].timeline if e.what == "Case changed"]

    # Assigning twice, or unassigning nobody, is said plainly and changes nothing.
    bobs.post(url + "unassign/")
    assert "is not assigned to anyone" in bobs.get(url + "change/").text
    assert case.history.count() == 4  # captured + three assignment changes


def test_assign_and_note_need_the_change_permission_and_the_location(day):
    viewer = billing_user("vic", day["main"], perms=["view_financedcase"])
    case = day["mine"]["na_old"]
    client = console_client(viewer)
    assert client.post(f"/admin/financing/financedcase/{case.pk}/assign/").status_code == 403
    assert client.post(f"/admin/financing/financedcase/{case.pk}/note/", {"text": "x"}).status_code == 403
    ann = console_client(billing_user("ann", day["main"]))
    theirs = day["theirs"]["na_old"]
    for action in ("assign", "unassign", "note", "review-shadow"):
        assert ann.post(f"/admin/financing/financedcase/{theirs.pk}/{action}/", {"text": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.assigned_to is None and not CaseNote.objects.exists()


def test_an_internal_note_is_on_the_timeline_with_its_author_and_nowhere_else(day, caplog, tasks):
    ann = billing_user("ann", day["main"])
    case = day["mine"]["na_old"]
    client = console_client(ann)
    text = "Called Mrs Thompson: she will close the old agreement on Monday.\nResume after that."
    with caplog.at_level(logging.DEBUG):
        response = client.post(f"/admin/financing/financedcase/{case.pk}/note/", {"text": text})
    assert response.status_code == 302
    note = CaseNote.objects.get()
    assert (note.case, note.author, note.text) == (case, ann, text.strip())
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    entry = next(e for e in page.context["story"].timeline if e.kind == "note")
    assert (entry.what, entry.who, entry.why) == ("Internal note", "ann", note.text)
    assert "Called Mrs Thompson: she will close the old agreement on Monday.<br>Resume after that." in page.text
    # Never in a log line, never sent, never in the admin log's message, never in clear in the database.
    assert "Thompson" not in caplog.text and "close the old agreement" not in caplog.text
    assert tasks.queue == [] and not Notification.objects.filter(created_at__gte=note.created_at).exists()
    assert not LogEntry.objects.filter(change_message__contains="Thompson").exists()  # the words stay on the page
    raw = CaseNote.objects.filter(pk=note.pk).values_list("text", flat=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM financing_casenote WHERE id = %s", [note.pk])
        assert "Thompson" not in cursor.fetchone()[0]
    assert list(raw) == [note.text]


def test_an_empty_or_overlong_note_is_refused_with_a_reason(day):
    case = day["mine"]["na_old"]
    client = console_client(billing_user("ann", day["main"]))
    client.post(f"/admin/financing/financedcase/{case.pk}/note/", {"text": "   "})
    assert "This field is required." in client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    client.post(f"/admin/financing/financedcase/{case.pk}/note/", {"text": "x" * 2001})
    assert "at most 2000 characters" in client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert not CaseNote.objects.exists()


def test_marking_shadow_discrepancies_reviewed_records_who_and_when_and_clears_the_group(day):
    ann = billing_user("ann", day["main"])
    client = console_client(ann)
    case = day["mine"]["shadow"]
    assert f'value="Mark reviewed"' in client.get("/admin/").text
    response = client.post(f"/admin/financing/financedcase/{case.pk}/review-shadow/", {"next": "/admin/"})
    assert response.status_code == 302 and response.url == "/admin/"
    comparison = ShadowComparison.objects.get(case=case)
    assert comparison.reviewed_by == ann and comparison.reviewed_at is not None
    page = client.get("/admin/")
    assert groups(page)["shadow"] == []
    case_page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert "Reviewed by ann" in case_page.text
    entry = next(e for e in case_page.context["story"].timeline if e.what == "Marked the shadow discrepancies reviewed")
    assert entry.who == "ann" and ("reviewed by", "—", "ann") in entry.changes
    # An open redirect is refused: back to the case instead.
    again = client.post(f"/admin/financing/financedcase/{case.pk}/review-shadow/", {"next": "https://evil.example/"})
    assert again.url == f"/admin/financing/financedcase/{case.pk}/change/"
    assert "reviewed by ann already" in client.get(again.url).text


def test_a_new_comparison_that_differs_otherwise_needs_a_new_review(day, monkeypatch):
    from financing.services import arrangement

    ann = billing_user("ann", day["main"])
    case = day["mine"]["shadow"]
    services.mark_shadow_reviewed(case.pk, actor=ann)

    class Agreements:
        def __init__(self, due):
            self.due = due

        def list_payment_agreements(self, guarantor_id):
            from financing.ports import Agreement, Interval

            a = case.arrangement
            return [Agreement("6001", guarantor_id, "active", a.agreement_date, Interval.MONTHLY, a.plan_total, a.down_payment,
                              a.recurring_amount, a.number_of_payments, self.due, a.apr, "by hand")]

    request = arrangement.agreement_request(case, case.arrangement)
    monkeypatch.setattr(arrangement.partners, "pms_for", lambda location: Agreements(case.arrangement.first_payment_date + timedelta(days=3)))
    first = arrangement.compare_with_hand_entered(case, request)
    assert first.needs_review  # a different difference than the one reviewed
    services.mark_shadow_reviewed(case.pk, actor=ann)
    again = arrangement.compare_with_hand_entered(case, request)  # the same difference again
    assert again.reviewed_by == ann and not again.needs_review


# --- what billing staff read -----------------------------------------------------------------


def test_the_case_page_is_titled_by_its_reference_and_names_patient_and_guarantor(day):
    client = console_client(billing_user("ann", day["main"]))
    case = day["mine"]["na_old"]
    FinancedCase.objects.filter(pk=case.pk).update(guarantor_id="2001", guarantor_short_name="Mark T.")
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert f"<title>Case {case.reference} | Chairside</title>" in page.text
    assert f"<h1>Case {case.reference}</h1>" in page.text
    assert "Change financed case" not in page.text
    assert 'id="patient">Ava T. <span class="muted">(Patient ID' in page.text
    assert 'id="guarantor">Mark T. <span class="muted">(account 2001)' in page.text
    listing = client.get("/admin/financing/financedcase/")
    assert 'Ava T.<br><span class="muted">guarantor Mark T.</span>' in listing.text
    assert '<th scope="col" class="sortable column-captured">' in listing.text
    assert f'<td class="field-captured">{display.day(case.captured_at, day["main"])}</td>' in listing.text
    assert "12 months deferred interest" in listing.text  # the promotion's label, never its code
    assert ">deferred_12<" not in listing.text


def test_the_correction_form_speaks_plain_words(day):
    client = console_client(billing_user("ann", day["main"]))
    case = day["mine"]["done"]
    page = client.get(f"/admin/financing/financedcase/{case.pk}/correct/")
    text = page.text
    for label in ("What you corrected in Dentrix", "What Dentrix holds now", "Payment amount (every payment but the last)",
                  "First payment due date", "APR (%)", "Dentrix payment agreement id", "Amount financed"):
        assert label in text, label
    for internal in ("recurring_amount</td>", ">recurring amount<", "pms arrangement id", "pms_arrangement_id</td>", ">apr<"):
        assert internal not in text, internal
    # The values submitted are still the field names the service knows.
    assert '<option value="recurring_amount">Payment amount (every payment but the last)</option>' in text


def test_promotions_read_as_their_labels_on_the_location_and_in_the_timeline(day):
    ann = billing_user("ann", day["main"])
    client = console_client(ann)
    location_page = client.get(f"/admin/financing/location/{day['main'].pk}/change/")
    assert "<td>12 months deferred interest</td>" in location_page.text and "deferred_12" not in location_page.text
    case = day["mine"]["na_old"]
    FinancedCase.objects.filter(pk=case.pk).update(promotion="deferred_12")
    case.refresh_from_db()
    case.promotion = "reduced_apr_36"  # e.g. fixed by hand before resuming: the timeline shows labels
    audit.begin(ann).attribute(case, "Promotion changed")
    case.save(update_fields=["promotion"])
    timeline = client.get(f"/admin/financing/financedcase/{case.pk}/change/").context["story"].timeline
    change = next(e for e in timeline if e.why == "Promotion changed")
    assert ("promotion", "12 months deferred interest", "36 months reduced APR, fixed payments") in change.changes


def test_list_actions_assign_and_mark_reviewed_in_bulk_within_scope(day):
    ann = billing_user("ann", day["main"])
    client = console_client(ann)
    mine, theirs = day["mine"], day["theirs"]
    picked = [mine["na_old"].pk, mine["retry"].pk, theirs["na_old"].pk]  # the last is not hers: the list never holds it
    response = client.post("/admin/financing/financedcase/", {"action": "assign_to_me", "_selected_action": picked})
    assert response.status_code == 302
    assert set(FinancedCase.objects.filter(assigned_to=ann).values_list("pk", flat=True)) == {mine["na_old"].pk, mine["retry"].pk}
    assert FinancedCase.objects.get(pk=theirs["na_old"].pk).assigned_to is None
    client.post("/admin/financing/financedcase/", {"action": "unassign", "_selected_action": [mine["retry"].pk]})
    assert list(FinancedCase.objects.filter(assigned_to=ann).values_list("pk", flat=True)) == [mine["na_old"].pk]

    comparisons = ShadowComparison.objects.filter(case__in=[mine["shadow"], theirs["shadow"]]).values_list("pk", flat=True)
    client.post("/admin/financing/shadowcomparison/", {"action": "mark_reviewed", "_selected_action": list(comparisons)})
    assert ShadowComparison.objects.get(case=mine["shadow"]).reviewed_by == ann
    assert ShadowComparison.objects.get(case=theirs["shadow"]).reviewed_at is None
    listing = client.get("/admin/financing/shadowcomparison/?reviewed=no")
    assert listing.status_code == 200 and list(listing.context["cl"].result_list) == []


@pytest.mark.parametrize("junk", ["abc", "²", "9" * 30, "-1"])
def test_a_junk_location_shows_nothing_and_never_fails(day, junk):
    page = console_client(billing_user("ann", day["main"])).get("/admin/", {"location": junk})
    assert page.status_code == 200 and page.context["rows"] == [] and page.context["grand_total"] == 0
