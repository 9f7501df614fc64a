"""Who did what from the billing console: the one helper every staff action goes through.

A staff action (resume, retry, cancel — one case or a list of them —, resend a
confirmation, record a correction, compare a shadow case again) is recorded twice, at one
moment:

- in Django admin's own log (`LogEntry`, against the case): the admin's "Recent actions"
  and the case's history page list it, with the person;
- on the history rows of whatever the action changed (simple-history): each is attributed
  to the person and stamped with the action's moment, so the case timeline
  (`financing.timeline`) folds those rows into the action's one line instead of showing
  them as separate, anonymous changes.

Services take `actor` (the signed-in user; None from a shell or a test that does not care):
without a person there is nothing to credit, so nothing is logged, but the changes happen.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from ..models import FinancedCase

# LogEntry.change_message is a text column, but the admin shows it on one line.
MAX_MESSAGE = 500


@dataclass
class StaffAction:
    actor: object | None
    at: datetime = field(default_factory=timezone.now)

    @property
    def person(self):
        return self.actor if getattr(self.actor, "pk", None) else None

    def attribute(self, instance, why: str = ""):
        """Name the person, and the action's moment, on the next history row of `instance`
        (outside a request, simple-history's middleware cannot)."""
        if self.person is not None:
            instance._history_user = self.person
        instance._history_date = self.at
        if why:
            instance._change_reason = why[:100]  # simple-history's column width

    def log(self, case: FinancedCase, message: str) -> LogEntry | None:
        """Write the action into the admin's log against the case, in the caller's transaction."""
        if self.person is None:
            return None
        return LogEntry.objects.create(
            user_id=self.person.pk,
            content_type_id=case_content_type().pk,
            object_id=str(case.pk),
            object_repr=case.reference,
            action_flag=CHANGE,
            change_message=message[:MAX_MESSAGE],
            action_time=self.at,
        )

    @property
    def stamp(self) -> str:
        """The action's moment as a key suffix (a resend's notifications carry it, so the
        timeline can credit them to the action)."""
        return stamp(self.at)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def case_content_type() -> ContentType:
    return ContentType.objects.get_for_model(FinancedCase)


def begin(actor) -> StaffAction:
    """A staff action starting now, by `actor`."""
    return StaffAction(actor)
