"""The wait for posted production: at a PMS that writes a payment plan only over completed,
posted procedures (Dentrix Ascend, Eaglesoft: `partners.pms_needs_posted_production`), a
case the lender approved before the treatment was done waits in AWAITING_PRODUCTION instead
of failing or writing early.

- The arrangement step asks first (`hold_until_posted`): the case's treatment plan as the
  PMS holds it now. Any of the case's procedures not posted yet → AWAITING_PRODUCTION, and
  nothing is written.
- Beat (`cases_awaiting_production`, every PRODUCTION_CHECK_SECONDS) queues one check per
  waiting case (`check_posted_production`): a read of the patient's treatment plans, paced
  by the connection's rate limit like every partner call. Once every procedure is posted the
  case goes back to APPROVED, whose transition queues the arrangement step, which writes.
- The check claims the case like a step (a lease: one check of a case at a time, renewed by
  the heartbeat), but a check that ends normally gives its attempt back: a wait of weeks is
  hundreds of checks, and only checks that kill their worker count towards the attempt cap.
- A PMS outage, or our own rate limit, leaves the case waiting (the next beat asks again;
  the error shows on the case page). A plan rejected, removed or stripped of one of the
  case's procedures meanwhile, or a PMS that refuses to show the plan, needs a person
  (`reasons.plan_changed_before_posting`, `reasons.production_check_refused`).

A case recorded as a payment (Recording.PAYMENT) waits here at every PMS before it is
charged (`hold_for_charge`): for its posted treatment where the location charges on posting,
or for a person's *Charge now* where it charges on staff's word (then no check reads the PMS).

The stuck-case sweeper leaves waiting cases alone (a wait is not a lost message:
`sweeps.stuck_cases` looks at the driven states only), and so does the heartbeat's hand-back
(`sweeps.redrive` queues nothing for a state without a step): the next beat checks again.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from core import leases

from .. import partners, reasons
from ..models import CaseState, ChargeWhen, FinancedCase, Location, PaymentArrangement, Recording, WriteStatus, effective_template
from ..ports import PartnerError, PermanentPartnerError, RateLimited, TransientPartnerError, TreatmentPlan
from .leases import claim, finish, needs_attention, retry_later

log = logging.getLogger(__name__)

# A plan in one of these still stands for the treatment the patient said yes to.
STANDING_PLAN_STATES = frozenset({"accepted", "completed"})
CHECKS_PER_BEAT = 500  # a bounded bite per tick; the oldest-checked go first


@dataclass(frozen=True)
class Production:
    """What the PMS shows of the case's treatment: the procedures not posted yet, or what
    happened to the plan ("" when it still stands)."""

    unposted: tuple[str, ...] = ()
    change: str = ""

    @property
    def posted(self) -> bool:
        return not self.unposted and not self.change


def production_of(case: FinancedCase, plans: list[TreatmentPlan]) -> Production:
    """The case's procedures (by the PMS's ids, as captured) in its plan as the PMS holds it now."""
    plan = next((p for p in plans if p.plan_id == case.treatment_plan_id), None)
    if plan is None:
        return Production(change="it is no longer on the patient's record")
    if plan.status not in STANDING_PLAN_STATES:
        return Production(change=f"it is {plan.status}")
    in_pms = {p.procedure_id: p for p in plan.procedures if p.procedure_id}
    wanted = [p["procedure_id"] for p in case.procedures if p.get("procedure_id")]
    if not wanted:  # a case captured before procedures carried their ids: the whole plan
        wanted = list(in_pms)
    gone = [pid for pid in wanted if pid not in in_pms]
    if gone:
        which = ", ".join(gone)
        return Production(change=f"procedure{'s' if len(gone) > 1 else ''} {which} {'are' if len(gone) > 1 else 'is'} no longer on it")
    return Production(unposted=tuple(pid for pid in wanted if not in_pms[pid].posted))


@dataclass(frozen=True)
class Held:
    """The arrangement step's answer from `hold_until_posted`: `outcome` is the step's result
    when it must stop here ("" to go on); `plans`, the patient's plans it read (None: none)."""

    outcome: str = ""
    plans: list | None = None


def hold_until_posted(case: FinancedCase, token: str, arrangement: PaymentArrangement) -> Held:
    """The arrangement step's question before it writes: may it write now?

    Goes on (no outcome) when the PMS does not need posted production, when the treatment is
    posted, or when a write may already have gone out (its lookup by marker decides, not the
    ledger). Else the step stops: the case waits (AWAITING_PRODUCTION), retries a failed
    read, or needs a person; nothing was written.
    """
    location = case.location
    if not partners.pms_needs_posted_production(location) or case.production_posted_at is not None:
        return Held()  # posted already seen by the check that ended the wait: the rules read it again
    if arrangement.write_status in (WriteStatus.UNKNOWN, WriteStatus.WRITTEN):
        return Held()
    return _unless_posted(case, token, reasons.waiting_for_production(partners.pms_name(location)))


def _unless_posted(case: FinancedCase, token: str, waiting_reason: str) -> Held:
    """Read the case's plan now: go on (with the plans read) when its procedures are posted,
    else the case waits in AWAITING_PRODUCTION with `waiting_reason`. An outage retries, a
    refusal or a changed plan needs a person. Shared by the arrangement's and the
    purchase's hold."""
    pms_name = partners.pms_name(case.location)
    try:
        plans = partners.pms_for(case.location).get_treatment_plans(case.patient_id)
    except TransientPartnerError as exc:
        return Held(retry_later(case, token, exc))
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.production_check_refused(pms_name, case.treatment_plan_id, exc))
        return Held("needs_attention")
    production = production_of(case, plans)
    if production.change:
        needs_attention(case.pk, token, reasons.plan_changed_before_posting(case.treatment_plan_id, pms_name, production.change))
        return Held("needs_attention")
    if production.posted:
        return Held(plans=plans)
    now = timezone.now()
    finish(
        case.pk, token, CaseState.APPROVED, CaseState.AWAITING_PRODUCTION,
        reason=waiting_reason, production_awaited_at=now, last_polled_at=now,
    )
    log.info("case %s: waiting for %s procedure(s) to be posted", case.reference, len(production.unposted))
    return Held("awaiting_production")


def hold_for_charge(case: FinancedCase, token: str, purchase, charge_when: str) -> Held:
    """The purchase step's question before it charges (Recording.PAYMENT), at every PMS: may
    it charge now?

    Goes on when a person clicked *Charge now* (the purchase carries who), when a purchase may
    already have gone out (its lookup decides), or, where the location charges on posting
    (ChargeWhen.POSTED), once the planned procedures are posted. Else the case waits in
    AWAITING_PRODUCTION: for the posting (the beat's checks, as above), or for *Charge now*.
    """
    if purchase is not None and (purchase.charged_by_id or purchase.status != purchase.Status.PENDING):
        return Held()
    if charge_when == ChargeWhen.STAFF:
        now = timezone.now()
        finish(case.pk, token, CaseState.APPROVED, CaseState.AWAITING_PRODUCTION,
               reason=reasons.waiting_for_charge_now(), production_awaited_at=now, last_polled_at=now)
        return Held("awaiting_charge_now")
    if case.production_posted_at is not None:
        return Held()
    return _unless_posted(case, token, reasons.waiting_to_charge(partners.pms_name(case.location)))


def waits_for_staff(case: FinancedCase) -> bool:
    """A payment-recording case at a location that charges on *Charge now*: no posting ends its wait."""
    return case.recording == Recording.PAYMENT and effective_template(case.location).charge_when == ChargeWhen.STAFF


# --- beat ------------------------------------------------------------------------------------


def cases_awaiting_production(now=None, limit: int = CHECKS_PER_BEAT) -> list[int]:
    """Waiting cases due for a check, least recently checked first."""
    now = now or timezone.now()
    due = now - timedelta(seconds=settings.PRODUCTION_CHECK_SECONDS * 0.8)
    return list(
        FinancedCase.objects.filter(state=CaseState.AWAITING_PRODUCTION)
        .filter(Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=due))
        .filter(leases.free("lease_until", now))
        .exclude(location__mode=Location.Mode.PAUSED)
        .order_by(F("last_polled_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )


def check_posted_production(case_id: int) -> str:
    """One waiting case: is its treatment posted now? Read-only at the PMS."""
    claimed = claim(case_id, CaseState.AWAITING_PRODUCTION)
    if claimed is None:
        return "skipped"
    case, token = claimed
    if waits_for_staff(case):
        _keep_waiting(case, token)  # only *Charge now* ends this wait (services/purchase.py)
        return "waiting_for_staff"
    pms_name = partners.pms_name(case.location)
    try:
        plans = partners.pms_for(case.location).get_treatment_plans(case.patient_id)
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.production_check_refused(pms_name, case.treatment_plan_id, exc))
        return "needs_attention"
    except RateLimited:  # our own limiter held the read back: nothing failed, the next beat asks
        _keep_waiting(case, token, error=case.last_error)
        return "rate_limited"
    except PartnerError as exc:  # an outage: still waiting, the next beat asks again
        _keep_waiting(case, token, error=f"Checking {pms_name} for the posted treatment failed: {exc}")
        log.warning("case %s: posted-treatment check failed (%s); the next beat asks again", case.reference, exc)
        return "lookup_failed"
    production = production_of(case, plans)
    if production.change:
        needs_attention(case.pk, token, reasons.plan_changed_before_posting(case.treatment_plan_id, pms_name, production.change))
        return "needs_attention"
    if not production.posted:
        _keep_waiting(case, token)
        return "waiting"
    now = timezone.now()
    # Back to APPROVED: the transition queues the arrangement step, which writes (or, for a
    # case recorded as a payment, the purchase step, which charges).
    posted = reasons.posted_to_charge(pms_name) if case.recording == Recording.PAYMENT else reasons.production_posted(pms_name)
    finish(case.pk, token, CaseState.AWAITING_PRODUCTION, CaseState.APPROVED, reason=posted,
           production_posted_at=now, last_polled_at=now)
    log.info("case %s: treatment posted after %s", case.reference, now - case.production_awaited_at if case.production_awaited_at else "?")
    return "posted"


def _keep_waiting(case: FinancedCase, token: str, *, error: str = ""):
    """Let go of the case until the next beat, and give back the attempt the claim counted:
    a check that ended normally is not a failing step. (update(): bookkeeping, no history row.)"""
    FinancedCase.objects.filter(pk=case.pk, lease_token=token).update(
        lease_token="", lease_until=None, step_attempts=F("step_attempts") - 1, last_polled_at=timezone.now(), last_error=error,
    )
