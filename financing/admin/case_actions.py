"""What staff do to a case, from its page or from the list: each calls a named service."""


from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .. import display, services
from ..models import CaseState, Correction, Recording, related_or_none
from ..services import refunds
from ..services.corrections import CORRECTABLE


class ChargeNowForm(forms.Form):
    treatment_day = forms.DateField(
        label="Treatment date", input_formats=["%Y-%m-%d", "%b %d, %Y", "%m/%d/%Y"],
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Give the treatment date, e.g. Jan 15, 2027.", "required": "Give the treatment date."},
    )


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


class RefundForm(forms.Form):
    # Text, not a DecimalField: "$1,234.56" as the page shows money; services.refunds parses it.
    amount = forms.CharField(max_length=20, widget=forms.TextInput(attrs={"size": 10, "placeholder": "1,234.56"}))
    why = forms.CharField(max_length=500, label="Why", widget=forms.Textarea(attrs={"rows": 2, "cols": 50}))


def refund_context(user, case, can_change: bool) -> dict | None:
    """The case page's refunds: what was charged, what is left, the refunds so far, and
    which of Refund / Refund the rest and cancel this person may use (None: nothing charged)."""
    if case.recording != Recording.PAYMENT:
        return None  # only a case recorded as a payment is charged: no query for the others
    purchase = related_or_none(case, "purchase")
    if purchase is None or purchase.status not in (purchase.Status.SETTLED, purchase.Status.VOIDED):
        return None
    may = can_change and refunds.may_refund(user, case.location) and purchase.status == purchase.Status.SETTLED
    left = refunds.left_to_refund(purchase)
    return {
        "purchase": purchase,
        "left": left,
        "refunds": list(purchase.refunds.order_by("requested_at")),
        "can_refund": may and left > 0,
        "can_refund_and_cancel": may and left > 0 and CaseState.CANCELLED in services.ALLOWED_TRANSITIONS[case.state]
        and not refunds.voidable(case, purchase),
        # Empty, with "up to $X left" beside it: prefilled, one click would refund everything.
        "form": RefundForm(),
    }


# The correctable terms (Correction.FIELDS) as a billing clerk names them.
CORRECTION_LABELS = {
    "down_payment": "Down payment",
    "recurring_amount": "Payment amount (every payment but the last)",
    "final_payment": "Last payment amount",
    "financed_amount": "Amount financed",
    "number_of_payments": "Number of payments",
    "first_payment_date": "First payment due date",
    "apr": "APR (%)",
    "pms_arrangement_id": "{pms} payment agreement id",
}


def correction_label(field: str, pms_name: str) -> str:
    return CORRECTION_LABELS.get(field, field.replace("_", " ")).format(pms=pms_name)


class CorrectionForm(forms.Form):
    # The final payment follows from the other terms (services.corrections): not offered.
    field = forms.ChoiceField(choices=[])
    # Typed the way the page shows values (financing.display); ISO dates are accepted too.
    after = forms.CharField(
        max_length=255, help_text="Amounts as $1,234.56, dates as Jan 15, 2027, the APR as 17.90, payments as a whole number."
    )
    why = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), label="Why")

    def __init__(self, *args, pms_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field"].choices = [(name, correction_label(name, pms_name)) for name in CORRECTABLE]
        self.fields["field"].label = f"What you corrected in {pms_name}"
        self.fields["after"].label = f"What {pms_name} holds now"


class CaseActions:
    """The case admin's action views and list actions (mixed into FinancedCaseAdmin)."""

    def get_urls(self):
        def url(suffix, view, name):
            return path(f"<int:case_id>/{suffix}/", self.admin_site.admin_view(view), name=f"financing_financedcase_{name}")

        return [
            url("resume", self.resume_view, "resume"),
            url("retry", self.retry_view, "retry"),
            url("cancel", self.cancel_view, "cancel"),
            url("resend", self.resend_view, "resend"),
            url("compare", self.compare_view, "compare"),
            url("correct", self.correction_view, "correct"),
            url("refund", self.refund_view, "refund"),
            url("refund-and-cancel", self.refund_and_cancel_view, "refund_and_cancel"),
            url("charge-now", self.charge_now_view, "charge_now"),
        ] + super().get_urls()

    def _case_for_action(self, request, case_id):
        """The case, only if it is in the user's scope and they may change it (else 404/403)."""
        case = get_object_or_404(self.get_queryset(request), pk=case_id)
        if not self.has_change_permission(request, case):
            raise PermissionDenied
        return case

    def _back(self, case_id):
        return HttpResponseRedirect(reverse("admin:financing_financedcase_change", args=[case_id]))

    def _post_only(self, request, case_id, action):
        if request.method != "POST":
            return self._back(case_id)
        case = self._case_for_action(request, case_id)
        try:
            message = action(case)
        except (services.InvalidTransition, services.IntakeError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return self._back(case.pk)

    def resume_view(self, request, case_id):
        return self._post_only(
            request, case_id,
            lambda case: f"{services.resume_case(case.pk, actor=request.user).reference} resumed: the step it stopped at runs again.",
        )

    def retry_view(self, request, case_id):
        return self._post_only(
            request, case_id, lambda case: f"{services.retry_step(case.pk, actor=request.user).reference}: the current step runs again now."
        )

    def cancel_view(self, request, case_id):
        form = CancelForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, "Give a reason to cancel the case.", messages.ERROR)
            return self._back(case_id)
        return self._post_only(
            request, case_id,
            lambda case: f"{services.cancel_case(case.pk, reason=form.cleaned_data['reason'], actor=request.user).reference} cancelled.",
        )

    def refund_view(self, request, case_id):
        """Billing's *Refund*: an amount (no more than is left) and a reason; the refund runs
        as a task (services/refunds.py). A bad amount is a message on the page, never a 500."""
        form = RefundForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, "Give the amount to refund and a reason.", messages.ERROR)
            return self._back(case_id)

        def refund(case):
            made = services.request_refund(case.pk, amount=form.cleaned_data["amount"], why=form.cleaned_data["why"], actor=request.user)
            return f"Refund of {display.money(made.amount)} on its way to {case.location.lender_name}; the refund adjustment follows in {case.location.pms_name}."

        return self._post_only(request, case_id, refund)

    def refund_and_cancel_view(self, request, case_id):
        form = CancelForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, "Give a reason to refund and cancel the case.", messages.ERROR)
            return self._back(case_id)
        return self._post_only(
            request, case_id,
            lambda case: f"{services.refund_rest_and_cancel(case.pk, why=form.cleaned_data['reason'], actor=request.user).reference}: refunded and cancelled.",
        )

    def charge_now_view(self, request, case_id):
        """Staff's *Charge now* (services/purchase.py checks who, when and whether)."""
        form = ChargeNowForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, " ".join(form.errors.get("treatment_day", ["Give the treatment date."])), messages.ERROR)
            return self._back(case_id)

        def charge(case):
            day = form.cleaned_data["treatment_day"]
            services.charge_now(case.pk, treatment_day=day, actor=request.user)
            return f"{case.reference}: charging the purchase to {case.location.lender_name} now (treatment on {display.day(day)})."

        return self._post_only(request, case_id, charge)

    def resend_view(self, request, case_id):
        return self._post_only(
            request, case_id,
            lambda case: f"The {services.resend_confirmation(case.pk, actor=request.user)} confirmation is on its way to the coordinator again.",
        )

    def compare_view(self, request, case_id):
        def compare(case):
            comparison = services.compare_shadow(case.pk, actor=request.user)
            return f"Compared again with {case.location.pms_name}: {comparison.get_outcome_display().lower()}."

        return self._post_only(request, case_id, compare)

    def correction_view(self, request, case_id):
        case = self._case_for_action(request, case_id)
        if not request.user.has_perm("financing.add_correction"):
            raise PermissionDenied
        arrangement = getattr(case, "arrangement", None)
        form = CorrectionForm(request.POST or None, initial={"field": request.GET.get("field", "")}, pms_name=case.location.pms_name)
        if request.method == "POST" and form.is_valid():
            try:
                correction = services.record_correction(
                    case.pk,
                    field=form.cleaned_data["field"],
                    after=form.cleaned_data["after"],
                    why=form.cleaned_data["why"],
                    actor=request.user,
                )
            except services.CorrectionError as exc:
                for name, message in exc.fields.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                self.message_user(request, services.describe_correction(correction), messages.SUCCESS)
                return self._back(case.pk)
        pms_name = case.location.pms_name
        current = (
            {correction_label(name, pms_name): display.of_kind(kind, getattr(arrangement, name)) for name, kind in Correction.FIELDS.items()}
            if arrangement else {}
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Record a correction to {case.reference}",
            "case": case,
            "arrangement": arrangement,
            "current": current,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/financing/financedcase/correction_form.html", context)

    # -- list actions

    @admin.action(description="Resume selected cases that need attention", permissions=["change"])
    def resume_cases(self, request, queryset):
        done = 0
        for case_id in queryset.filter(state=CaseState.NEEDS_ATTENTION).values_list("pk", flat=True):
            services.resume_case(case_id, actor=request.user)
            done += 1
        self.message_user(request, f"Resumed {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Retry the current step of selected cases now", permissions=["change"])
    def retry_steps(self, request, queryset):
        done = 0
        for case_id in queryset.values_list("pk", flat=True):
            try:
                services.retry_step(case_id, actor=request.user)
                done += 1
            except services.InvalidTransition as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"Retried {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Cancel selected cases (asks for a reason)", permissions=["change"])
    def cancel_cases(self, request, queryset):
        form = CancelForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for case_id in queryset.values_list("pk", flat=True):
                try:
                    services.cancel_case(case_id, reason=form.cleaned_data["reason"], actor=request.user)
                    done += 1
                except services.InvalidTransition as exc:
                    self.message_user(request, str(exc), messages.WARNING)
            self.message_user(request, f"Cancelled {done} case(s).", messages.SUCCESS if done else messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel cases",
            "cases": queryset.select_related("location")[:200],
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/financing/financedcase/cancel_selected.html", context)
