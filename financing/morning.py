"""The coordinators' morning list: what the night's pre-screen found for the next business day.

One message per coordinator of the location and channel (email, SMS, as they chose and the
location's template allows), once per run (the de-duplication key holds the run), queued
when the run is done:

    Tomorrow at Main Street Dental: 4 patients pre-qualified up to $12,400.00;
    1 existing cardholder with $3,000.00 available.

The email lists them (time, "Ava T.", planned treatment, result, expiry); the SMS says the
sentence and links to the console's "Tomorrow's patients". Never a full name: the pre-screen
keeps none. A day with nobody pre-qualified and no cardholder sends nothing (nothing to act
on, like the billing digest).
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel
from notifications.services import Message, queue

from . import display
from .messages import _channels
from .models import Membership, Prescreen, PrescreenResult, PrescreenRun

TEMPLATE = "prescreen_morning"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass
class DayList:
    """A location's pre-screened day as the message and the console page tell it."""

    location: object
    day: date
    today: date  # the location's date when the list is told
    rows: list = field(default_factory=list)  # Prescreen rows, earliest first

    def of(self, *results) -> list:
        return [row for row in self.rows if row.result in results]

    @property
    def prequalified(self) -> list:
        return self.of(PrescreenResult.PREQUALIFIED)

    @property
    def cardholders(self) -> list:
        return self.of(PrescreenResult.EXISTING_CARDHOLDER)

    @property
    def prequalified_total(self) -> Decimal:
        return sum((row.amount for row in self.prequalified), Decimal("0.00"))

    @property
    def available_total(self) -> Decimal:
        return sum((row.amount for row in self.cardholders), Decimal("0.00"))

    @property
    def day_words(self) -> str:
        """"Tomorrow", or the weekday when the next business day is further ("Monday")."""
        if self.day == self.today + timedelta(days=1):
            return "Tomorrow"
        return f"{self.day:%A}" if self.day - self.today < timedelta(days=7) else display.day(self.day)

    @property
    def findings(self) -> str:
        """"4 patients pre-qualified up to $12,400.00; 1 existing cardholder with $3,000.00
        available" ("" when neither)."""
        parts = []
        if self.prequalified:
            parts.append(f"{_plural(len(self.prequalified), 'patient', 'patients')} pre-qualified up to {display.money(self.prequalified_total)}")
        if self.cardholders:
            parts.append(
                f"{_plural(len(self.cardholders), 'existing cardholder', 'existing cardholders')} with "
                f"{display.money(self.available_total)} available"
            )
        return "; ".join(parts)

    @property
    def headline(self) -> str:
        return f"{self.day_words} at {self.location.name}: {self.findings or 'nobody pre-qualified'}."

    @property
    def the_rest(self) -> str:
        """The others on the list, in a sentence ("" when none)."""
        screened = [
            _plural(len(rows), words, words) for rows, words in (
                (self.of(PrescreenResult.NOT_PREQUALIFIED), "not pre-qualified (they may still apply)"),
                (self.of(PrescreenResult.NO_RESULT), "with no result"),
            ) if rows
        ]
        unscreened = [
            _plural(len(rows), words, words) for rows, words in (
                (self.of(PrescreenResult.MINOR), "under 18"),
                (self.of(PrescreenResult.OPTED_OUT), "opted out"),
                (self.of(PrescreenResult.NOT_FOUND), "not found in " + self.location.pms_name),
                (self.of(PrescreenResult.PENDING), "not screened yet"),
            ) if rows
        ]
        parts = []
        if screened:
            parts.append("also screened: " + ", ".join(screened))
        if unscreened:
            parts.append("not screened: " + ", ".join(unscreened))
        text = "; ".join(parts)
        return text[:1].upper() + text[1:] + "." if text else ""


def day_list(location, day: date, today: date) -> DayList:
    rows = list(Prescreen.objects.filter(location=location, day=day).order_by("starts_at", "pk"))
    return DayList(location=location, day=day, today=today, rows=rows)


def page_url(location) -> str:
    return f"{settings.CHAIRSIDE_PUBLIC_URL}{reverse('console-tomorrow')}?location={location.pk}"


def result_words(row: Prescreen, location=None) -> str:
    """A patient's result in plain words, for the page and the email."""
    if row.result == PrescreenResult.PREQUALIFIED:
        return f"Pre-qualified up to {display.money(row.amount)}"
    if row.result == PrescreenResult.EXISTING_CARDHOLDER:
        return f"Existing cardholder: {display.money(row.amount)} available"
    if row.result == PrescreenResult.NOT_PREQUALIFIED:
        return "Not pre-qualified: the patient may still apply"
    if row.result == PrescreenResult.NO_RESULT:
        lender = location.lender_name if location is not None else "the lender"
        return f"No result: {lender} found no match or could not screen the patient"
    if row.result == PrescreenResult.NOT_FOUND and location is not None:
        return f"Not screened: not found in {location.pms_name}"
    return row.get_result_display()


def case_prescreen_words(case) -> str:
    """What the patient's pre-screen said when their case was captured ("" if none), for
    the case page: "Pre-qualified up to $2,000.00 until Jan 5, 2027 (screened Dec 6, 2026,
    6:02 AM EST)"."""
    if not case.prescreen_outcome:
        return ""
    row = Prescreen(result=case.prescreen_outcome, amount=case.prescreen_amount)
    words = result_words(row, case.location)
    if case.prescreen_expires_on:
        words += f" until {display.day(case.prescreen_expires_on)}"
    return f"{words} (screened {display.when(case.prescreened_at, case.location)})"


def queue_morning_message(run: PrescreenRun, send=queue) -> int:
    """Queue the run's message to each coordinator of its location; returns how many were
    queued (0 when there is nothing to act on). Queuing again sends nothing more."""
    location = run.location
    told = day_list(location, run.day, timezone.now().astimezone(display.zone_of(location)).date())
    if not told.findings:
        return 0
    coordinators = [
        m.user for m in Membership.objects.filter(location=location, role=Membership.Role.COORDINATOR, user__is_active=True)
        .select_related("user").order_by("user_id")
    ]
    rows = [{"row": row, "result": result_words(row, location)} for row in told.prequalified + told.cardholders]
    rows.sort(key=lambda item: (item["row"].starts_at, item["row"].pk))
    context = {"list": told, "rows": rows, "location": location, "url": page_url(location)}
    queued = 0
    for user in coordinators:
        for channel, recipient in _channels(user, location.template):
            kind = "sms" if channel == Channel.SMS else "txt"
            send(
                Message(
                    dedupe_key=f"prescreen:{run.pk}:{channel}:{user.pk}",
                    reference=f"prescreen-{run.day:%Y%m%d}-{location.pk}"[:40],
                    channel=channel,
                    recipient=recipient,
                    template=TEMPLATE,
                    subject=told.headline,
                    body=render_to_string(f"notifications/{TEMPLATE}.{kind}", context).strip(),
                    html_body=render_to_string(f"notifications/{TEMPLATE}.html", context) if channel == Channel.EMAIL else "",
                    # About a day's list, not a case: no billing alert if it fails.
                    escalate=False,
                )
            )
            queued += 1
    return queued
