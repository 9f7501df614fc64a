"""Step 2, the application hand-off: demographics read from the PMS (never typed) prefill
the lender's application; the patient completes it on the lender's hosted page."""

from django.db import transaction
from django.utils import timezone

from .. import messages, partners, reasons
from ..models import CaseState
from ..ports import Applicant, ApplicationRequest, PermanentPartnerError, TransientPartnerError
from . import cardholder
from .capture import clinic_problem, find_plan, plan_problem, snapshot
from .leases import claim, finish, needs_attention, retry_later


def send_application(case_id: int) -> str:
    claimed = claim(case_id, CaseState.CAPTURED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    try:
        pms = partners.pms_for(case.location)
        patient = pms.get_patient(case.patient_id)
        plans = pms.get_treatment_plans(case.patient_id)
        # Checked again here, before anything goes to the lender: intake could not when
        # the PMS was down, and the clinic binding or the plan may have changed since.
        problem = clinic_problem(case.location, patient) or plan_problem(case, plans)
        if problem:
            needs_attention(case.pk, token, problem)
            return "needs_attention"
        snapshot(case, patient, find_plan(plans, case.treatment_plan_id), pms=pms)
        requested = case.plan_total - case.requested_down_payment
        if requested <= 0:
            needs_attention(case.pk, token, reasons.nothing_to_finance(case.requested_down_payment, case.plan_total))
            return "needs_attention"
        if cardholder.covers(case, requested):
            # An existing cardholder with the credit: the lender confirms on the card, no application.
            outcome = cardholder.approve_on_card(case, token, patient, requested)
            if outcome is not None:
                return outcome
        application = partners.lender_for(case.location).create_application(
            ApplicationRequest(
                merchant_number=case.location.merchant_number,
                reference=case.reference,
                requested_amount=requested,
                applicant=Applicant(
                    first_name=patient.first_name,
                    last_name=patient.last_name,
                    birth_date=patient.birth_date,
                    phone=patient.phone,
                    email=patient.email,
                    address=patient.address,
                ),
                callback_url=partners.lender_callback_url(case.location),
            )
        )
    except TransientPartnerError as exc:
        return retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.application_refused(exc))
        return "needs_attention"
    with transaction.atomic():  # the apply link is queued with the hand-off, or not at all
        case = finish(
            case.pk,
            token,
            CaseState.CAPTURED,
            CaseState.APPLICATION_SENT,
            application_id=application.application_id,
            apply_url=application.apply_url,
            application_sent_at=timezone.now(),
            guarantor_id=case.guarantor_id,
            patient_short_name=case.patient_short_name,
            guarantor_short_name=case.guarantor_short_name,
            surname_token=case.surname_token,
            procedures=case.procedures,
            plan_total=case.plan_total,
        )
        messages.queue_patient_apply_link(case, phone=patient.phone, email=patient.email)
    return "sent"
