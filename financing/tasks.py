"""Thin Celery tasks: an id in, one service call, a short result out (ignored).

Each step re-checks the case's state inside its service, so a redelivered message
(acks_late, a worker killed mid-task, a duplicate enqueue) is harmless. Retries with
backoff are scheduled by the services, which also count attempts in the database.
"""

from celery import shared_task
from django.conf import settings

from . import services


def _run_step(step, case_id: int) -> str:
    try:
        return step(case_id)
    except services.LeaseLost:
        # Our lease ran out mid-step and another worker took the case over: not an error.
        return "lease_lost"


@shared_task(name="financing.send_application")
def send_application(case_id: int) -> str:
    return _run_step(services.send_application, case_id)


@shared_task(name="financing.refresh_decision")
def refresh_decision(case_id: int) -> str:
    return services.refresh_decision(case_id)


@shared_task(name="financing.write_arrangement")
def write_arrangement(case_id: int) -> str:
    return _run_step(services.write_arrangement, case_id)


@shared_task(name="financing.post_ledger_note")
def post_ledger_note(case_id: int) -> str:
    return _run_step(services.post_ledger_note, case_id)


@shared_task(name="financing.charge_purchase")
def charge_purchase(case_id: int) -> str:
    """Recording.PAYMENT: charge the approved case's purchase (services/purchase.py)."""
    return _run_step(services.charge_purchase, case_id)


@shared_task(name="financing.post_payment")
def post_payment(case_id: int) -> str:
    """Recording.PAYMENT: post the payment and the merchant fee (services/posting.py)."""
    return _run_step(services.post_payment, case_id)


@shared_task(name="financing.expire_unused_approvals")
def expire_unused_approvals() -> int:
    """Beat: approvals that lapsed before they were charged end as EXPIRED, billing told."""
    return services.expire_unused_approvals()


@shared_task(name="financing.poll_decisions")
def poll_decisions() -> int:
    """Beat: ask the lender about every case waiting on it, and expire the stale ones.

    One task per merchant whose lender lists changed decisions (a slow or rate-limited
    merchant holds up nobody else); one lookup per case for a lender that cannot.
    """
    services.expire_stale()
    listed, per_case = services.locations_to_poll()
    for location_id in listed:
        poll_lender_decisions.delay(location_id)
    case_ids = services.cases_to_poll(location_ids=per_case) if per_case else []
    for case_id in case_ids:
        refresh_decision.delay(case_id)
    return len(listed) + len(case_ids)


@shared_task(name="financing.poll_lender_decisions")
def poll_lender_decisions(location_id: int) -> str:
    return services.poll_lender_decisions(location_id)


@shared_task(name="financing.check_production")
def check_production() -> int:
    """Beat: one check per case waiting for its treatment to be posted (services/production.py).
    Each check is its own task on the pms queue, paced by the connection's rate limit."""
    case_ids = services.cases_awaiting_production()
    for case_id in case_ids:
        check_posted_production.delay(case_id)
    return len(case_ids)


@shared_task(name="financing.check_posted_production")
def check_posted_production(case_id: int) -> str:
    return _run_step(services.check_posted_production, case_id)


@shared_task(name="financing.redrive_stuck_cases")
def redrive_stuck_cases() -> int:
    """Beat: re-enqueue the step of every case whose message was lost (the claim dedups), and
    every refund whose message was lost (its run holds the case's lease)."""
    from .services import refunds

    case_ids = services.stuck_cases()
    for case_id in case_ids:
        services.redrive(case_id)
    # Refunds run outside the case's steps: theirs are looked for here too.
    refund_ids = refunds.refunds_to_redrive()
    for refund_id in refund_ids:
        refund.delay(refund_id)
    return len(case_ids) + len(refund_ids)


@shared_task(name="financing.daily_digest")
def daily_digest() -> int:
    """Beat, once a day: the billing members' digest (one per member per UTC day)."""
    from .digest import queue_daily_digests

    return queue_daily_digests()


@shared_task(name="financing.prescreen_locations")
def prescreen_locations() -> int:
    """Beat: start the pre-screen of the next business day at every location whose hour has
    come (once per location and day), and queue again a run whose message was lost."""
    from .services import prescreen

    run_ids = prescreen.runs_to_start()
    for run_id in run_ids:
        prescreen_run.delay(run_id)
    return len(run_ids)


@shared_task(
    name="financing.prescreen_run",
    soft_time_limit=settings.PRESCREEN_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.PRESCREEN_TASK_TIME_LIMIT,
)
def prescreen_run(run_id: int) -> str:
    """One piece of a location's pre-screen: read the schedule, or screen the next batch
    (each queues the next; services/prescreen.py). Its own time bound: reading a day's
    schedule is one port call of as many requests as the PMS needs (settings)."""
    from .services import prescreen

    return prescreen.work_on_run(run_id)



@shared_task(name="financing.reconcile_settlements")
def reconcile_settlements() -> int:
    """Beat: once a day (from RECONCILIATION_HOUR on the lender's clock), each merchant's
    settlement report of yesterday matched against the ledger; a failed run is tried again
    at the next tick."""
    from .services import reconciliation

    run_ids = reconciliation.runs_to_start()
    for run_id in run_ids:
        reconcile_run.delay(run_id)
    return len(run_ids)


@shared_task(name="financing.reconcile_run")
def reconcile_run(run_id: int) -> str:
    from .services import reconciliation

    return reconciliation.reconcile(run_id)
@shared_task(name="financing.refund")
def refund(refund_id: int) -> str:
    """A staff refund: the lender refund once (by its key), then its ledger posting."""
    from .services import refunds

    return refunds.run_refund(refund_id)
