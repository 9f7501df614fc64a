"""The wait for posted treatment in the demo history: at each demo location whose PMS writes a
plan only over posted production (`partners.pms_needs_posted_production`: Dentrix Ascend,
Eaglesoft), cases the lender approved before the treatment, as the flow leaves them:

- `WAITED` cases that waited in awaiting_production for days, then were written once the
  treatment was posted (their schedule runs from the posting, as the arrangement step makes it);
- two still waiting: one for a few days (nobody's work), one for longer than
  `PRODUCTION_WAIT_ALERT_DAYS` ("Needs you today" lists it);
- a case stopped for each reason only such a location gives (`STOPS`): the plan rejected while
  it waited, the PMS refusing to show the plan.

They are drawn from their own random stream (`draw`), so the rest of the history is the same
whether or not such a location exists: the same seed, the same cases.
"""

from datetime import datetime, timedelta

from django.conf import settings

from .. import partners, reasons
from ..models import CaseState, Location
from .cases import DAY_CLOSES, DAY_OPENS, Built, Event, Spec, approved, record_approval
from .plans import draw_plan, fit_promotion, offers_for

WAITED = 4
# Days ago each still-waiting case's patient said yes: one recent, one waiting unusually long.
STILL_WAITING = (5, None)  # None: PRODUCTION_WAIT_ALERT_DAYS + 4
# The reasons only a location that waits for posted treatment gives, one case each.
STOPS = ("production_plan_changed", "production_check_refused")
FIRST_NUMBER = 2000  # the patients' numbers (their ids follow): far from the rest of the history's
PER_LOCATION = 100


def locations(candidates) -> list[Location]:
    """The demo locations among `candidates` whose PMS needs posted production, by code."""
    return sorted(
        (loc for loc in candidates if loc.pms_kind in partners.PMS_IMPLEMENTATIONS and partners.pms_needs_posted_production(loc)),
        key=lambda loc: loc.code,
    )


def draw(rng, waiting_locations: list[Location]) -> list[Spec]:
    specs = []
    for index, location in enumerate(waiting_locations):
        n = FIRST_NUMBER + index * PER_LOCATION
        flavours = [("waited", None)] * WAITED + [("waiting", days) for days in STILL_WAITING]
        flavours += [("stopped", kind) for i, kind in enumerate(STOPS) if i % len(waiting_locations) == index]
        for flavour, detail in flavours:
            plan = draw_plan(rng, n, minor_share=0)
            for i, procedure in enumerate(plan.procedures):  # as the PMS ids them: the plan is built over them
                procedure["procedure_id"] = str(90001 + n * 10 + i)
            spec = Spec(location, f"production:{flavour}", plan, minute=rng.randint(DAY_OPENS, DAY_CLOSES))
            spec.extra.update(correction=None, wait_days=rng.uniform(1, 14), stop_days=rng.uniform(2, 9))
            if flavour == "waited":
                spec.week, spec.day = rng.randint(2, 10), rng.randint(0, 5)
            elif flavour == "waiting":
                spec.days_ago = detail if detail is not None else settings.PRODUCTION_WAIT_ALERT_DAYS + 4
            else:
                spec.extra["kind"] = detail
                spec.days_ago = rng.randint(10, 20)
            specs.append(spec)
            n += 1
    return specs


def until_waiting(spec: Spec, t0: datetime, people: dict, waiting_reason: str) -> list[Event]:
    """A case's path from capture to waiting for its treatment (here, and the money's
    cases in demo/money.py): captured, sent, approved, then waiting with `waiting_reason`."""
    t = spec.timing
    sent = t0 + timedelta(seconds=t["send"])
    decided = sent + timedelta(seconds=t["decide"])
    return [
        Event(CaseState.CAPTURED, t0, by=people["coordinator"].get(spec.location.code)),
        Event(CaseState.APPLICATION_SENT, sent),
        Event(CaseState.APPROVED, decided),
        Event(CaseState.AWAITING_PRODUCTION, decided + timedelta(seconds=t["write"]), waiting_reason),
    ]


def path(spec: Spec, t0: datetime, lender: str, people: dict) -> list[Event]:
    t, pms = spec.timing, partners.pms_name(spec.location)
    events = until_waiting(spec, t0, people, reasons.waiting_for_production(pms))
    awaited = events[-1].at
    flavour = spec.flavour.removeprefix("production:")
    if flavour == "waiting":
        return events
    if flavour == "stopped":
        return [*events, Event(CaseState.NEEDS_ATTENTION, awaited + timedelta(days=spec.extra["stop_days"]))]
    # Beat saw the treatment posted within a check of the posting; the step wrote it at once.
    posted = awaited + timedelta(days=spec.extra["wait_days"])
    written = posted + timedelta(seconds=t["write"])
    events.append(Event(CaseState.APPROVED, posted, reasons.production_posted(pms)))
    if spec.location.mode == Location.Mode.SHADOW:
        return [*events, Event(CaseState.COMPLETED, written, reasons.SHADOW_COMPLETED)]
    return [*events, Event(CaseState.ARRANGEMENT_WRITTEN, written), Event(CaseState.COMPLETED, written + timedelta(seconds=t["note"]))]


def finish(built: Built, now: datetime):
    """The records the flow kept, and a stopped case's reason."""
    spec, case, plan = built.spec, built.case, built.spec.plan
    decided = next(e.at for e in built.events if e.state == CaseState.APPROVED)
    flavour = spec.flavour.removeprefix("production:")
    if flavour == "waited":
        approved(built, decided, partial=False, pending=False)
        return
    fit_promotion(plan, plan.requested)
    case.promotion = plan.promotion
    record_approval(built, decided, plan.requested, offers_for(plan.requested))
    if flavour == "stopped":
        pms = partners.pms_name(case.location)
        if spec.extra["kind"] == "production_plan_changed":
            reason = reasons.plan_changed_before_posting(plan.plan_id, pms, "it is rejected")
        else:
            reason = reasons.production_check_refused(
                pms, plan.plan_id, f"{pms} refused the request: the API key may not read treatment plans (HTTP 403)"
            )
        built.events[-1].reason = case.state_reason = reason
        built.notify.append(("needs_attention", built.events[-1].at))
