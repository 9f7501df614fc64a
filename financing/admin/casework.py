"""How clerks share out the work from the console: assign a case to themselves (or give it
back), leave an internal note, mark shadow discrepancies reviewed. Each view calls a service
in `financing.services.casework`, which credits the person (`services/audit.py`: the admin's
log and the case timeline; a note, by its author).
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .. import services
from ..services.casework import NOTE_MAX_LENGTH


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Internal note",
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "placeholder": "Seen by the billing team only: never sent, never exported."}),
    )


class CaseworkActions:
    """Mixed into FinancedCaseAdmin, beside CaseActions (whose scope and permission checks it
    reuses: `_case_for_action`)."""

    def get_urls(self):
        def url(suffix, view, name):
            return path(f"<int:case_id>/{suffix}/", self.admin_site.admin_view(view), name=f"financing_financedcase_{name}")

        return [
            url("assign", self.assign_view, "assign"),
            url("unassign", self.unassign_view, "unassign"),
            url("note", self.note_view, "note"),
            url("review-shadow", self.review_shadow_view, "review_shadow"),
        ] + super().get_urls()

    def _done(self, request, case_id, action):
        """POST only: run the action on a case in scope, say how it went, go back where the
        person came from (the case page, or "Needs you today")."""
        if request.method == "POST":
            case = self._case_for_action(request, case_id)
            try:
                message = action(case)
            except services.CaseworkError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            target = reverse("admin:financing_financedcase_change", args=[case_id])
        return HttpResponseRedirect(target)

    def assign_view(self, request, case_id):
        return self._done(
            request, case_id,
            lambda case: f"{services.assign_case(case.pk, actor=request.user).reference} is assigned to you.",
        )

    def unassign_view(self, request, case_id):
        return self._done(
            request, case_id,
            lambda case: f"{services.unassign_case(case.pk, actor=request.user).reference} is no longer assigned to anyone.",
        )

    def note_view(self, request, case_id):
        def add(case):
            form = NoteForm(request.POST)
            if not form.is_valid():
                raise services.CaseworkError(" ".join(form.errors["text"]))
            services.add_note(case.pk, text=form.cleaned_data["text"], actor=request.user)
            return f"Note added to {case.reference}."

        return self._done(request, case_id, add)

    def review_shadow_view(self, request, case_id):
        return self._done(
            request, case_id,
            lambda case: f"{services.mark_shadow_reviewed(case.pk, actor=request.user).case.reference}: shadow discrepancies marked reviewed.",
        )

    # -- list actions

    @admin.action(description="Assign selected cases to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        done = 0
        for case_id in queryset.exclude(assigned_to=request.user).values_list("pk", flat=True):
            services.assign_case(case_id, actor=request.user)
            done += 1
        self.message_user(request, f"Assigned {done} case(s) to you.", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Unassign selected cases", permissions=["change"])
    def unassign(self, request, queryset):
        done = 0
        for case_id in queryset.filter(assigned_to__isnull=False).values_list("pk", flat=True):
            services.unassign_case(case_id, actor=request.user)
            done += 1
        self.message_user(request, f"Unassigned {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    # -- the case page

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            can_change = self.has_change_permission(request, obj)
            shadow = context.get("story").shadow if context.get("story") else None
            context.update(
                can_assign=can_change and obj.assigned_to_id != request.user.pk,
                can_unassign=can_change and obj.assigned_to_id is not None,
                can_note=can_change,
                can_review_shadow=can_change and shadow is not None and shadow.needs_review,
                note_form=NoteForm(),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
