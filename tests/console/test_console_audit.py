"""Every staff action is credited to the person who did it (issue 12, defect 3): one entry
in the admin's own log (LogEntry: "Recent actions", the case's history page) and one line on
the case timeline, with the person, whether it came from the case page or a list action.
The history rows an action writes are folded into that line, not shown again as anonymous
changes; a refused action logs nothing."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone

from financing.models import CaseState, FinancedCase, Location, ShadowComparison
from financing.timeline import build_story
from notifications.models import Notification
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db(transaction=True)  # tasks are enqueued on commit


def logged(case):
    return [(e.user.get_username(), e.action_flag, e.object_repr, e.get_change_message()) for e in
            LogEntry.objects.filter(object_id=str(case.pk), content_type__model="financedcase").order_by("pk")]


def timeline_of(case):
    return build_story(FinancedCase.objects.select_related("location").get(pk=case.pk)).timeline


def actions_of(case):
    return [(e.who, e.what, e.effects) for e in timeline_of(case) if e.kind == "action"]


def test_case_page_actions_are_logged_and_on_the_timeline_with_the_person(main, ann, tasks):
    client = console_client(ann)
    stuck = make_case(main, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.APPROVED, reason="Dentrix refused the payment agreement")
    client.post(f"/admin/financing/financedcase/{stuck.pk}/resume/")
    assert logged(stuck) == [("ann", CHANGE, stuck.reference, "Resumed the case: back to approved")]
    # The state change is the resume's effect, on the resume's line: not a second, separate row.
    [(who, what, effects)] = actions_of(stuck)
    assert (who, what) == ("ann", "Resumed the case: back to approved")
    assert effects[0] == "Needs attention → Approved"
    assert [e.what for e in timeline_of(stuck) if e.kind == "state"] == ["Case captured"]

    FinancedCase.objects.filter(pk=stuck.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=3), last_error="Dentrix timed out")
    client.post(f"/admin/financing/financedcase/{stuck.pk}/retry/")
    assert logged(stuck)[1] == ("ann", CHANGE, stuck.reference, "Retried the current step now: writing the payment agreement to Dentrix")

    client.post(f"/admin/financing/financedcase/{stuck.pk}/cancel/", {"reason": "Patient chose to pay cash"})
    assert logged(stuck)[2] == ("ann", CHANGE, stuck.reference, "Cancelled the case: Patient chose to pay cash")
    assert [(who, what) for who, what, _ in actions_of(stuck)] == [
        ("ann", "Resumed the case: back to approved"),
        ("ann", "Retried the current step now: writing the payment agreement to Dentrix"),
        ("ann", "Cancelled the case: Patient chose to pay cash"),
    ]

    done = make_case(main, coordinator=make_user("cora", main))
    client.post(f"/admin/financing/financedcase/{done.pk}/correct/", {"field": "apr", "after": "1.00", "why": "Dentrix shows 1%"})
    # `main`'s PMS is the discard port: the record in force could not be read back, and the
    # log line says so after the clerk's why.
    assert logged(done) == [("ann", CHANGE, done.reference, (
        "Recorded a correction: apr 0.00% → 1.00%. Dentrix shows 1%. Chairside could not confirm which payment agreement "
        f"Dentrix holds now for guarantor account {done.guarantor_id} (the correction was made to payment agreement "
        f"{done.arrangement.pms_arrangement_id}): check the account in Dentrix, and record the id it shows as a correction if it changed."
    ))]


def test_a_resend_is_credited_and_its_messages_are_not_chairsides(main, ann, tasks):
    coordinator = make_user("cora", main)
    case = make_case(main, coordinator=coordinator)
    console_client(ann).post(f"/admin/financing/financedcase/{case.pk}/resend/")

    assert logged(case) == [("ann", CHANGE, case.reference, "Resent the approval confirmation to the coordinator, cora")]
    assert Notification.objects.filter(reference=case.reference).count() == 2  # email and SMS
    [(who, what, effects)] = actions_of(case)
    assert (who, what) == ("ann", "Resent the approval confirmation to the coordinator, cora")
    assert effects == ["Case approved by Email: queued", "Case approved by SMS: queued"]
    assert [e for e in timeline_of(case) if e.kind == "notification"] == []  # nothing says "Chairside" did it


def test_list_actions_log_one_entry_per_case_each_with_the_person(main, ann, tasks):
    client = console_client(ann)
    first, second = make_case(main, state=CaseState.CAPTURED), make_case(main, state=CaseState.AWAITING_DECISION)
    client.post("/admin/financing/financedcase/", {"action": "cancel_cases", "_selected_action": [first.pk, second.pk], "reason": "Duplicate plans"})
    assert logged(first) == [("ann", CHANGE, first.reference, "Cancelled the case: Duplicate plans")]
    assert logged(second) == [("ann", CHANGE, second.reference, "Cancelled the case: Duplicate plans")]
    assert [(who, what) for who, what, _ in actions_of(second)] == [("ann", "Cancelled the case: Duplicate plans")]

    stuck = make_case(main, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.AWAITING_DECISION, reason="CareCredit timed out")
    client.post("/admin/financing/financedcase/", {"action": "resume_cases", "_selected_action": [stuck.pk]})
    assert logged(stuck) == [("ann", CHANGE, stuck.reference, "Resumed the case: back to awaiting decision")]
    client.post("/admin/financing/financedcase/", {"action": "retry_steps", "_selected_action": [stuck.pk]})
    assert logged(stuck)[1] == ("ann", CHANGE, stuck.reference, "Retried the current step now: asking CareCredit for the decision")


def test_comparing_a_shadow_case_again_is_credited_from_the_page_and_the_list(template, tasks):
    south = plain_location(template, "south", mode=Location.Mode.SHADOW)
    bob = billing_user("bob", south)
    case = make_case(south, shadow=True)
    client = console_client(bob)
    client.post(f"/admin/financing/financedcase/{case.pk}/compare/")
    comparison = ShadowComparison.objects.get(case=case)
    client.post("/admin/financing/shadowcomparison/", {"action": "compare_again", "_selected_action": [comparison.pk]})
    # Nothing listens at the location's Dentrix address: the lookup failure is the outcome.
    assert logged(case) == [("bob", CHANGE, case.reference, "Compared again with Dentrix: Dentrix lookup failed")] * 2
    [first, second] = actions_of(case)
    assert first[0] == second[0] == "bob"
    assert first[2][0] == "Shadow comparison: dentrix lookup failed"  # its history row, folded in
    assert [e for e in timeline_of(case) if e.kind == "audit" and "Shadow comparison" in e.what] == []


def test_the_admins_recent_actions_and_the_case_history_list_them(main, ann, tasks):
    case = make_case(main, state=CaseState.AWAITING_DECISION)
    client = console_client(ann)
    client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "Patient moved away"})
    index = client.get("/admin/").text
    assert "Recent actions" in index and case.reference in index.split('id="recent-actions-module"')[1]
    history = client.get(f"/admin/financing/financedcase/{case.pk}/history/").text
    staff = history.split('id="staff-actions"')[1].split("</table>")[0]
    assert "ann" in staff and "Cancelled the case: Patient moved away" in staff


def test_a_refused_action_logs_nothing(main, ann, tasks):
    done = make_case(main)
    client = console_client(ann)
    client.post(f"/admin/financing/financedcase/{done.pk}/resume/")
    client.post(f"/admin/financing/financedcase/{done.pk}/retry/")
    client.post(f"/admin/financing/financedcase/{done.pk}/resend/")  # no coordinator
    assert logged(done) == []
    assert LogEntry.objects.count() == 0
