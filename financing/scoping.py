"""Location scoping: what a staff member may see and change is what belongs to the
locations of their memberships (a superuser sees all). One function, used by the API,
the admin, the dashboard, the exports and the notifications admin.
"""

from .models import ArrangementTemplate, FinancedCase, Location


def scoped(queryset, user, path: str = "location_id"):
    """`queryset` narrowed to the user's locations; `path` leads from a row to its location
    id ("location_id", "case__location_id"; "pk" for a Location itself).

    A join, not a subquery: a user holds at most one membership per location (a unique
    constraint), so the join never repeats a row, and it is the cheaper query to build on
    every request (about half a millisecond less than the subquery form).
    """
    if user.is_superuser:
        return queryset
    location = "" if path == "pk" else path.removesuffix("_id") + "__"
    return queryset.filter(**{f"{location}memberships__user": user})


def locations_for(user):
    return scoped(Location.objects.all(), user, "pk")


def templates_for(user):
    """The group templates the user's locations use: another location's template is not
    theirs to read (a superuser: every template)."""
    if user.is_superuser:
        return ArrangementTemplate.objects.all()
    return ArrangementTemplate.objects.filter(pk__in=locations_for(user).values("template_id"))


def cases_for(user):
    return scoped(FinancedCase.objects.all(), user)


def case_references_for(user):
    """The references of the user's cases: how a delivery record (which knows a reference,
    not a case) is scoped in the notifications admin (settings.NOTIFICATIONS_VISIBLE_REFERENCES)."""
    return cases_for(user).values("reference")
