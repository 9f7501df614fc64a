"""Step 1, capture: the patient's "yes" becomes a case, checked against the PMS at once."""

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction

from core import blind_index

from .. import partners, reasons
from ..models import STATES_RELEASING_THE_PLAN, FinancedCase, Location, effective_template
from ..ports import NotFoundError, PermanentPartnerError, TransientPartnerError
from ..scoping import cases_for
from ..terms import money
from . import cardholder
from .states import enqueue_step

log = logging.getLogger(__name__)

SURNAME = "surname"  # the purpose of the patient's surname search token (core.blind_index)


class IntakeError(Exception):
    """Bad input at intake: field → message, shown to the caller as a 400."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def capture_case(
    *,
    location: Location,
    patient_id: str,
    treatment_plan_id: str,
    down_payment: Decimal = Decimal("0.00"),
    promotion: str | None = None,
    actor=None,
    patient_consents_to_messages: bool = False,
) -> FinancedCase:
    """Start a financed case for an accepted treatment plan (the patient's "yes").

    The plan is checked against the PMS now, so a typo is a 400 at the chair, not a
    needs_attention case later: the patient must be one of the location's clinics', and the
    plan must be theirs, accepted, and not already held by a case at any location of the
    same practice database. If the PMS cannot be reached, the case is accepted anyway and
    the first step checks the patient and the plan (the database's constraint still keeps
    the plan to one case).
    """
    if location.mode == Location.Mode.PAUSED:
        raise IntakeError({"location": f"Location {location.code} is paused: Chairside is not taking new cases there."})
    try:
        practice_database = partners.pms_identity(location)
    except ValueError:
        raise IntakeError({"location": f"Location {location.code} has no usable {partners.pms_name(location)} address: an administrator must fix its connection."})
    template = effective_template(location)
    case = FinancedCase(
        location=location,
        # How the case records CareCredit is fixed now: a later change of the template
        # never reaches a case under way.
        recording=template.recording,
        pms_identity=practice_database,
        coordinator=actor if getattr(actor, "pk", None) else None,
        patient_id=patient_id,
        treatment_plan_id=treatment_plan_id,
        requested_down_payment=down_payment,
        promotion=promotion or template.default_promotion,
        patient_consents_to_messages=patient_consents_to_messages,
    )
    try:
        pms = partners.pms_for(location)
        patient = pms.get_patient(patient_id)
        plans = pms.get_treatment_plans(patient_id)
    except NotFoundError:
        raise IntakeError({"patient_id": f"Patient {patient_id} was not found in {partners.pms_name(location)}."})
    except TransientPartnerError as exc:
        log.warning("intake for %s: PMS unreachable (%s); the capture step will check the plan", location.code, exc)
    except PermanentPartnerError as exc:
        raise IntakeError({"patient_id": f"{partners.pms_name(location)} refused the lookup: {exc}"})
    else:
        problem = clinic_problem(location, patient)
        if problem:
            raise IntakeError({"patient_id": problem})
        problem = plan_problem(case, plans)
        if problem:
            raise IntakeError({"treatment_plan_id": problem})
        snapshot(case, patient, find_plan(plans, treatment_plan_id), pms=pms)
        if case.requested_down_payment >= case.plan_total:
            raise IntakeError(
                {"down_payment": f"The down payment ({money(down_payment)}) covers the whole plan ({money(case.plan_total)}): there is nothing to finance."}
            )
    holder = case_holding_the_plan(case)
    if holder:
        raise IntakeError({"treatment_plan_id": already_financed(case, holder, actor)})
    cardholder.remember_prescreen(case)
    try:
        with transaction.atomic():
            case.save()
            enqueue_step(case)
    except IntegrityError:
        # Another request for the same plan committed between the check above and this
        # insert: the database's constraint refused the second case. Same answer as the check.
        holder = case_holding_the_plan(case)
        if holder is None:
            raise
        raise IntakeError({"treatment_plan_id": already_financed(case, holder, actor)})
    log.info("case %s captured at %s", case.reference, location.code)
    return case


def case_holding_the_plan(case: FinancedCase) -> FinancedCase | None:
    """The case, at any location, that already holds this patient plan of the practice
    database (the rows the `one_open_case_per_practice_plan` constraint counts)."""
    return (
        FinancedCase.objects.filter(
            pms_identity=case.pms_identity, patient_id=case.patient_id, treatment_plan_id=case.treatment_plan_id
        )
        .exclude(state__in=STATES_RELEASING_THE_PLAN)
        .select_related("location")
        .first()
    )


def already_financed(case: FinancedCase, holder: FinancedCase, actor) -> str:
    """Why the plan is refused. The holding case's reference, state and location are named
    only to a caller who may see that case (financing.scoping): another location's staff
    learn that the plan is taken, which they need to stop, and nothing of that location's
    work. Never PHI: ids, a reference, a location."""
    plan = case.treatment_plan_id
    if getattr(actor, "pk", None) and cases_for(actor).filter(pk=holder.pk).exists():
        where = f"{holder.location.name} ({holder.location.code})"
        return f"Treatment plan {plan} already has a financing case: {holder.reference} ({holder.get_state_display().lower()}) at {where}."
    if holder.location_id == case.location_id:
        return f"Treatment plan {plan} already has a financing case at this location."
    return f"Treatment plan {plan} already has a financing case at another location of this practice."


def clinic_problem(location: Location, patient) -> str:
    """Why this location may not start a case for this patient ("" when it may): in a
    multi-clinic database a location reaches only its own clinics' patients. Ids only."""
    served = location.clinic_ids
    if not served or patient.clinic_id in served:
        return ""
    serves = f"clinic {served[0]}" if len(served) == 1 else "clinics " + ", ".join(served)
    if not patient.clinic_id:
        return reasons.patient_without_clinic(patient.patient_id, partners.pms_name(location), serves)
    return reasons.patient_of_another_clinic(patient.patient_id, patient.clinic_id, serves)


def _guarantor_short_name(pms, location, guarantor_id: str) -> str:
    """The guarantor's short name, or "" if the PMS cannot tell now: a name on a screen is
    never worth stopping a case for."""
    try:
        return short_name(pms.get_patient(guarantor_id))
    except (TransientPartnerError, PermanentPartnerError) as exc:
        log.warning("case at %s: guarantor lookup failed (%s); the case shows the account only", location.code, type(exc).__name__)
        return ""


def find_plan(plans, plan_id):
    return next((p for p in plans if p.plan_id == plan_id), None)


def plan_problem(case: FinancedCase, plans) -> str:
    plan = find_plan(plans, case.treatment_plan_id)
    if plan is None:
        return reasons.plan_not_patients(case.treatment_plan_id, case.patient_id)
    if plan.status != "accepted":
        return reasons.plan_not_accepted(case.treatment_plan_id, plan.status, partners.pms_name(case.location))
    if plan.total <= 0:
        return reasons.plan_without_fees(case.treatment_plan_id)
    return ""


def short_name(person) -> str:
    """"Ava T.": first name and last initial, the most of a name a message may carry."""
    return f"{person.first_name} {person.last_name[:1]}.".strip()


def snapshot(case: FinancedCase, patient, plan, *, pms):
    """What the case keeps of the PMS's records: the plan, the patient as billing staff read
    them (short names, a surname search token, never the full name) and the guarantor."""
    guarantor_changed = case.guarantor_id != patient.guarantor_id
    case.guarantor_id = patient.guarantor_id
    case.patient_short_name = short_name(patient)
    case.surname_token = blind_index.token(SURNAME, patient.last_name)
    if patient.guarantor_id in ("", patient.patient_id):
        case.guarantor_short_name = case.patient_short_name
    elif guarantor_changed or not case.guarantor_short_name:
        case.guarantor_short_name = _guarantor_short_name(pms, case.location, patient.guarantor_id)
    case.procedures = [
        {"procedure_id": p.procedure_id, "code": p.code, "tooth": p.tooth, "surface": p.surface, "fee": f"{p.fee:.2f}"}
        for p in plan.procedures
    ]
    case.plan_total = plan.total
