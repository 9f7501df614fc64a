"""The work of the day: what needs a person, per location, oldest first.

Each kind of work is defined once, here, as a filter on cases. The console's landing page
("Needs you today") lists them, the case list filters by them (its "needs attention"
filter), the dashboard and the daily digest count them.

| kind | a case is in it when | oldest first by |
|---|---|---|
| needs attention | it stopped for a person | when it stopped |
| retrying after errors | a step Chairside drives (application, agreement, ledger note) failed and is being retried | when it reached that step |
| waiting on the lender | the application went out over a day ago and no decision came | when it was sent |
| waiting long for posted treatment | approved before the treatment, at a PMS that writes a plan only over posted procedures, and still not posted after `PRODUCTION_WAIT_ALERT_DAYS` (30) | when the wait began |
| confirmations not delivered | its coordinator's confirmation (approval, decline) failed, was not delivered, or sat unsent for an hour, and no later one went out | when that message was queued |
| shadow discrepancies | shadow mode found differences from the hand-entered agreement, and nobody has marked them reviewed | when compared |

A case waiting for its treatment to be posted (`awaiting_production`) is nobody's work while
it waits: the treatment is weeks away, and beat writes the plan as soon as the PMS shows it
posted. It becomes billing's work only once the wait is unusually long (the patient may not
have come back, or the front desk never posted the procedures).

Fast on big tables: the counts per location are three grouped queries, each on an index
(open cases by state; failing notifications by status; unreviewed comparisons by a partial
index), and each list is the `LIST_LIMIT` oldest rows, so a page costs a fixed number of
queries whatever the data. Callers pass location ids they took from `financing.scoping`.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, Subquery

from notifications.models import Notification

from . import partners
from .messages import template_label
from .models import WAITING_FOR_LENDER, CaseState, FinancedCase, ShadowComparison
from .services.states import STEP_FOR_STATE, step_description

WAITING_TOO_LONG = timedelta(days=1)
# A confirmation not handed to its provider within an hour is stuck: the sender retries
# transient failures for about 10 minutes, and the sweeper re-drives lost ones every minute.
STUCK_AFTER = timedelta(hours=1)
LIST_LIMIT = 25
# What tells the coordinator how a case ended; a failure of these leaves a patient unbooked.
CONFIRMATIONS = ("case_approved", "case_declined")
# The steps Chairside drives itself; the waiting states are polled, and a failed poll is
# not a failed step (the "waiting" kind covers a decision that does not come).
DRIVEN_STATES = tuple(state for state in STEP_FOR_STATE if state not in WAITING_FOR_LENDER)

Status = Notification.Status


@dataclass(frozen=True)
class Kind:
    key: str  # also the case list's ?attention= value
    title: str
    since: str  # what the age of a row measures
    empty: str  # what an empty group says


KINDS = (
    Kind("needs_attention", "Needs attention", "Stopped", "No case is waiting for a person."),
    Kind("retrying", "Retrying after errors", "At this step since", "No step is failing."),
    Kind("waiting", "Waiting on {lender} for over a day", "Application sent", "Every application sent over a day ago has its decision."),
    Kind(
        "production_overdue", "Treatment not posted after {days} days", "Waiting since",
        "No case has waited over {days} days for its treatment to be posted.",
    ),
    Kind("undelivered", "Confirmations not delivered", "Queued", "Every confirmation went out."),
    Kind("shadow", "Shadow discrepancies to review", "Compared", "No shadow discrepancy waits for a review."),
)
KIND = {kind.key: kind for kind in KINDS}


def title(kind: Kind, lender: str = "the lender") -> str:
    """The kind's title as the console shows it ("Waiting on CareCredit for over a day")."""
    return kind.title.format(lender=lender, days=settings.PRODUCTION_WAIT_ALERT_DAYS)


def empty(kind: Kind) -> str:
    return kind.empty.format(days=settings.PRODUCTION_WAIT_ALERT_DAYS)


def production_wait_too_long() -> timedelta:
    return timedelta(days=settings.PRODUCTION_WAIT_ALERT_DAYS)


def failing_confirmations(now: datetime):
    """Coordinator confirmations that did not go out, unless a later one of the same kind
    for the same case did (a resend that worked settles it)."""
    went_out = Notification.objects.filter(
        reference=OuterRef("reference"),
        template=OuterRef("template"),
        status__in=[Status.SENT, Status.DELIVERED],
        created_at__gt=OuterRef("created_at"),
    )
    failing = Q(status__in=[Status.FAILED, Status.UNDELIVERED]) | Q(
        status__in=[Status.QUEUED, Status.SENDING], created_at__lt=now - STUCK_AFTER
    )
    return Notification.objects.filter(failing, template__in=CONFIRMATIONS).exclude(Exists(went_out))


def case_filter(key: str, now: datetime) -> Q:
    """The cases of one kind, as a filter on FinancedCase (the case list uses it as is)."""
    if key == "needs_attention":
        return Q(state=CaseState.NEEDS_ATTENTION)
    if key == "retrying":
        return Q(state__in=DRIVEN_STATES) & ~Q(last_error="")
    if key == "waiting":
        return Q(state__in=WAITING_FOR_LENDER, application_sent_at__lt=now - WAITING_TOO_LONG)
    if key == "production_overdue":
        return Q(state=CaseState.AWAITING_PRODUCTION, production_awaited_at__lt=now - production_wait_too_long())
    if key == "undelivered":
        return Q(reference__in=failing_confirmations(now).values("reference"))
    if key == "shadow":
        return Q(shadow_comparison__outcome=ShadowComparison.Outcome.MISMATCH, shadow_comparison__reviewed_at__isnull=True)
    raise KeyError(key)


# --- counts -------------------------------------------------------------------------------


@dataclass
class Counts:
    cells: dict = field(default_factory=dict)  # (location id, kind key) → count

    def of(self, location_id, key: str) -> int:
        return self.cells.get((location_id, key), 0)

    def total(self, key: str) -> int:
        return sum(n for (_, k), n in self.cells.items() if k == key)

    def location_total(self, location_id) -> int:
        return sum(n for (loc, _), n in self.cells.items() if loc == location_id)

    @property
    def grand_total(self) -> int:
        return sum(self.cells.values())


CASE_KINDS = ("needs_attention", "retrying", "waiting", "production_overdue")


def counts(location_ids, now: datetime) -> Counts:
    """How many of each kind at each location, in three queries whatever the data size."""
    result = Counts()
    # Open cases, by state (an indexed column): the state-based kinds in one pass.
    filters = {key: case_filter(key, now) for key in CASE_KINDS}
    any_kind = Q()
    for q in filters.values():
        any_kind |= q
    rows = (
        FinancedCase.objects.filter(any_kind, location_id__in=location_ids)
        .values("location_id")
        .annotate(**{key: Count("pk", filter=q) for key, q in filters.items()})
        .order_by()
    )
    for row in rows:
        for key in CASE_KINDS:
            if row[key]:
                result.cells[(row["location_id"], key)] = row[key]
    # Failing notifications are a few among many (their status is indexed); each leads to
    # its case by the unique reference.
    undelivered = (
        FinancedCase.objects.filter(case_filter("undelivered", now), location_id__in=location_ids)
        .values("location_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in undelivered:
        result.cells[(row["location_id"], "undelivered")] = row["n"]
    # Unreviewed discrepancies: a partial index holds exactly these rows.
    shadow = (
        ShadowComparison.objects.filter(
            location_id__in=location_ids, outcome=ShadowComparison.Outcome.MISMATCH, reviewed_at__isnull=True
        )
        .values("location_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in shadow:
        result.cells[(row["location_id"], "shadow")] = row["n"]
    return result


# --- the oldest of each kind --------------------------------------------------------------


@dataclass
class Item:
    case: FinancedCase
    since: datetime
    detail: str
    comparison: ShadowComparison | None = None


ORDER = {
    "needs_attention": "state_changed_at", "retrying": "state_changed_at", "waiting": "application_sent_at",
    "production_overdue": "production_awaited_at",
}


def oldest(key: str, location_ids, now: datetime, limit: int = LIST_LIMIT) -> list[Item]:
    """The `limit` oldest of one kind at these locations, each with what a clerk reads first."""
    cases = FinancedCase.objects.filter(location_id__in=location_ids).select_related("location", "assigned_to")
    if key in ORDER:
        rows = cases.filter(case_filter(key, now)).order_by(ORDER[key], "pk")[:limit]
        return [Item(case, getattr(case, ORDER[key]), _detail(key, case)) for case in rows]
    if key == "undelivered":
        first = failing_confirmations(now).filter(reference=OuterRef("reference")).order_by("created_at", "pk")
        # The oldest failing message of each case rides along as columns: no query per row.
        annotations = {f"failing_{name}": Subquery(first.values(name)[:1]) for name in ("created_at", "template", "channel", "status", "error")}
        rows = cases.filter(case_filter(key, now)).annotate(**annotations).order_by("failing_created_at", "pk")[:limit]
        return [Item(case, case.failing_created_at, _undelivered(case)) for case in rows]
    if key == "shadow":
        rows = (
            ShadowComparison.objects.filter(
                location_id__in=location_ids, outcome=ShadowComparison.Outcome.MISMATCH, reviewed_at__isnull=True
            )
            .select_related("case", "case__location", "case__assigned_to")
            .order_by("compared_at", "pk")[:limit]
        )
        return [
            Item(c.case, c.compared_at, "; ".join(c.discrepancy_lines(partners.pms_name(c.case.location))), comparison=c)
            for c in rows
        ]
    raise KeyError(key)


def _detail(key: str, case: FinancedCase) -> str:
    if key == "needs_attention":
        return case.state_reason or "Stopped without a reason recorded: open the case and its timeline."
    if key == "retrying":
        return f"{step_description(case)}, attempt {case.step_attempts}: {case.last_error}"
    if key == "production_overdue":
        pms = partners.pms_name(case.location)
        text = (f"Approved, waiting for treatment plan {case.treatment_plan_id} to be posted in {pms}: has the patient "
                f"had the treatment? If not, talk to the practice; if so, post it in {pms}.")
        return f"{text} Last check: {case.last_error}" if case.last_error else text
    return f"{case.get_state_display()}, application {case.application_id or '—'}"


def _undelivered(case: FinancedCase) -> str:
    what = template_label(case.failing_template)
    channel = dict(Notification._meta.get_field("channel").choices).get(case.failing_channel, case.failing_channel)
    status = dict(Status.choices).get(case.failing_status, case.failing_status)
    text = f"{what.capitalize()} by {channel}: {status.lower()}"
    if case.failing_status in (Status.QUEUED, Status.SENDING):
        text += " for over an hour"
    return f"{text} ({case.failing_error})" if case.failing_error else text
