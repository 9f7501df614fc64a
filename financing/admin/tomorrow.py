""""Tomorrow's patients": the night's pre-screen of a location's next business day, and
*Start financing* from it.

Per location the staff member covers (financing.scoping), one at a time: the day the
pre-screen looks at now (the next business day on the location's own clock), how its run
went, and each patient booked with planned treatment over the threshold: the time (the
location's zone), "Ava T.", the planned fees, the result in plain words and its expiry.

- *Start financing* opens the case capture prefilled from the appointment's plan (patient,
  plan, and the plan's total as the PMS holds it now) and captures through
  `services.capture_case`, exactly as the API does; a plan that already has an open case
  links to it instead.
- *Screen again* reruns the day (services.prescreen.rerun: refreshed, never duplicated).
- *Opt out* records that the patient does not want to be pre-screened here, and forgets
  their result.

Permissions: the page needs `view_prescreen`; starting a case `add_financedcase`; screening
again `change_prescreenrun`; an opt-out `add_prescreenoptout` (the demo's coordinators hold
them all, billing the first and the last).
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.inbound import id_param

from .. import display, morning, partners, services
from ..models import (
    PROMOTION_CHOICES,
    STATES_RELEASING_THE_PLAN,
    FinancedCase,
    Location,
    Prescreen,
    PrescreenOptOut,
    PrescreenRun,
    effective_template,
)
from ..ports import PartnerError
from ..scoping import locations_for
from ..services import prescreen
from ..services.capture import find_plan
from .base import LocationScopedAdmin, ScopedLocationFilter


def _require(request, perm: str):
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _page_url(location_id) -> str:
    return f"{reverse('console-tomorrow')}?location={location_id}"


def tomorrow_view(request):
    _require(request, "financing.view_prescreen")
    allowed = list(locations_for(request.user).order_by("code"))
    wanted = request.GET.get("location", "")
    wanted_id = id_param(wanted)
    if wanted:
        # Another location's id, or junk, shows nothing (never a 500, never their list).
        location = next((loc for loc in allowed if loc.pk == wanted_id), None)
    else:
        location = allowed[0] if allowed else None
    context = {
        **admin.site.each_context(request),
        "title": "Tomorrow's patients",
        "allowed": allowed,
        "location": location,
        "can_start": request.user.has_perm("financing.add_financedcase"),
        "can_rerun": request.user.has_perm("financing.change_prescreenrun"),
        "can_opt_out": request.user.has_perm("financing.add_prescreenoptout"),
    }
    if location is not None:
        context.update(_day(location))
    return TemplateResponse(request, "admin/financing/tomorrow.html", context)


def _day(location: Location) -> dict:
    now = timezone.now()
    today = prescreen.local_now(location, now).date()
    try:
        day = prescreen.day_to_screen(location, now)
    except prescreen.PrescreenError as exc:
        return {"problem": str(exc)}
    told = morning.day_list(location, day, today)
    run = PrescreenRun.objects.filter(location=location, day=day).first()
    patient_ids = [row.patient_id for row in told.rows]
    open_cases = {
        (case.patient_id, case.treatment_plan_id): case
        for case in FinancedCase.objects.filter(location=location, patient_id__in=patient_ids)
        .exclude(state__in=STATES_RELEASING_THE_PLAN)
        .only("pk", "reference", "state", "patient_id", "treatment_plan_id")
    }
    rows = [
        {
            "row": row,
            "result": morning.result_words(row, location),
            "case": open_cases.get((row.patient_id, row.treatment_plan_id)),
        }
        for row in told.rows
    ]
    return {
        "day": day, "list": told, "rows": rows, "run": run, "status": _status(location, run, told, now),
        "readable": prescreen.schedule_readable(location),
    }


def _status(location: Location, run: PrescreenRun | None, told, now) -> str:
    """How the day's pre-screen went, in a sentence."""
    lender = location.lender_name
    if run is None:
        if not location.prescreen_enabled:
            return "Pre-screening is turned off at this location."
        if not prescreen.schedule_readable(location):
            return prescreen.no_schedule(location)
        at = prescreen.local_now(location, now).replace(hour=location.prescreen_hour, minute=0, second=0, microsecond=0)
        return f"Not screened yet: the pre-screen runs from {display.clock(at, location)}."
    started = display.local_moment(run.started_at, location, now=now)
    if run.status == PrescreenRun.Status.DONE:
        took = display.span(run.finished_at - run.started_at) if run.finished_at else display.NOTHING
        return (
            f"Screened with {lender} {started}, in {took}: {len(told.rows)} patient{'s' if len(told.rows) != 1 else ''}, "
            f"{run.batches} batch{'es' if run.batches != 1 else ''}."
        )
    if run.status == PrescreenRun.Status.FAILED:
        return f"The pre-screen started {started} stopped: {run.last_error}"
    done = sum(1 for row in told.rows if row.result != "pending")
    waiting = f" Last error: {run.last_error}" if run.last_error else ""
    return f"Screening with {lender} since {started}: {done} of {len(told.rows)} patients so far.{waiting}"


def _scoped_prescreen(request, prescreen_id: int) -> Prescreen:
    row = (
        Prescreen.objects.filter(pk=prescreen_id, location__in=locations_for(request.user))
        .select_related("location", "location__template", "location__template_override")
        .first()
    )
    if row is None:
        raise Http404("No such patient on your locations' lists.")
    return row


# --- Start financing -------------------------------------------------------------------------


class StartFinancingForm(forms.Form):
    down_payment = forms.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.00"), initial=Decimal("0.00"),
        help_text="Paid at the office today; the rest is financed.",
    )
    promotion = forms.ChoiceField(choices=PROMOTION_CHOICES)
    patient_consents_to_messages = forms.BooleanField(
        required=False, label="The patient agrees to get the application link by SMS or email",
    )


def start_financing_view(request, prescreen_id: int):
    _require(request, "financing.add_financedcase")
    row = _scoped_prescreen(request, prescreen_id)
    location = row.location
    back = _page_url(location.pk)
    if not row.treatment_plan_id:
        messages.error(request, "The appointment carries no treatment plan: start the case from the plan in the PMS.")
        return HttpResponseRedirect(back)
    form = StartFinancingForm(
        request.POST or None, initial={"promotion": effective_template(location).default_promotion}
    )
    if request.method == "POST" and form.is_valid():
        try:
            case = services.capture_case(
                location=location,
                patient_id=row.patient_id,
                treatment_plan_id=row.treatment_plan_id,
                down_payment=form.cleaned_data["down_payment"],
                promotion=form.cleaned_data["promotion"],
                patient_consents_to_messages=form.cleaned_data["patient_consents_to_messages"],
                actor=request.user,
            )
        except services.IntakeError as exc:
            for name, message in exc.fields.items():
                form.add_error(name if name in form.fields else None, message)
        else:
            messages.success(request, f"Case {case.reference} started for {row.patient_short_name or 'the patient'}.")
            return HttpResponseRedirect(reverse("admin:financing_financedcase_change", args=[case.pk]))
    plan, plan_problem = _plan_now(row)
    context = {
        **admin.site.each_context(request),
        "title": f"Start financing for {row.patient_short_name or 'patient ' + row.patient_id}",
        "row": row,
        "location": location,
        "plan": plan,
        "plan_problem": plan_problem,
        "result": morning.result_words(row, location),
        "form": form,
        "back": back,
    }
    return TemplateResponse(request, "admin/financing/start_financing.html", context)


def _plan_now(row: Prescreen):
    """The appointment's plan as the PMS holds it now (its total and procedures), or why
    it cannot be shown: the capture checks it again either way."""
    pms_name = row.location.pms_name
    try:
        plan = find_plan(partners.pms_for(row.location).get_treatment_plans(row.patient_id), row.treatment_plan_id)
    except PartnerError as exc:
        return None, f"{pms_name} could not show the plan now ({exc}); the capture checks it."
    if plan is None:
        return None, f"{pms_name} no longer shows treatment plan {row.treatment_plan_id} for this patient."
    return plan, ""


# --- Screen again, opt out -------------------------------------------------------------------


def rerun_view(request):
    _require(request, "financing.change_prescreenrun")
    location_id = id_param(request.POST.get("location", "")) if request.method == "POST" else None
    location = locations_for(request.user).filter(pk=location_id).first() if location_id else None
    if location is None:
        raise Http404("No such location among yours.")
    try:
        run = prescreen.rerun(location)
    except prescreen.PrescreenError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Screening {display.day(run.day)} again at {location.name}: the list refreshes as the answers come.")
    return HttpResponseRedirect(_page_url(location.pk))


def opt_out_view(request, prescreen_id: int):
    _require(request, "financing.add_prescreenoptout")
    row = _scoped_prescreen(request, prescreen_id)
    if request.method == "POST":
        prescreen.opt_out(row.location, row.patient_id, actor=request.user)
        messages.success(request, f"Patient {row.patient_id} will not be pre-screened at {row.location.name}.")
    return HttpResponseRedirect(_page_url(row.location_id))


@admin.register(PrescreenOptOut)
class PrescreenOptOutAdmin(LocationScopedAdmin):
    """Who asked not to be pre-screened, per location: added here or from the list."""

    list_display = ["patient_id", "location", "note", "created_by", "created"]
    list_filter = [ScopedLocationFilter]
    list_select_related = ["location", "created_by"]
    search_fields = ["patient_id"]
    fields = ["location", "patient_id", "note"]
    ordering = ["-created_at"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(patient_id=term), False) if term else (queryset, False)

    @admin.display(description="Since", ordering="created_at")
    def created(self, obj):
        return display.when(obj.created_at, obj.location)

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)
        prescreen.forget_result(obj.location, obj.patient_id)
