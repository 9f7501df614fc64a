"""What every console page shares: the location scope, capped counts, read-only history."""


from django.contrib import admin
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.utils import timezone
from django.utils.functional import cached_property
from simple_history.admin import SimpleHistoryAdmin

from core.inbound import id_param

from .. import display
from ..models import (
    Location,
)
from ..scoping import locations_for, scoped


class ScopedHistoryAdmin(SimpleHistoryAdmin):
    """simple-history's pages, held to the same scope as the change page, and read-only.

    Its history views look rows up by id, not through get_queryset, and its version page
    reverts on POST: a revert would bypass the services (and the location scope), so it is
    refused outright; corrections and actions are the way to change a record.
    """

    def _in_scope(self, request, object_id):
        try:
            # Read as the id field reads it: "abc", "²" or 5,000 digits is no record (a
            # ValueError from filter() was a 500).
            pk = self.model._meta.pk.to_python(unquote(object_id))
        except ValidationError:
            raise Http404("No such record in your locations.") from None
        if not self.get_queryset(request).filter(pk=pk).exists():
            raise Http404("No such record in your locations.")

    def history_view(self, request, object_id, extra_context=None):
        self._in_scope(request, object_id)
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._in_scope(request, object_id)
        if request.method == "POST":
            raise PermissionDenied("History is read-only: reverting would bypass Chairside's services.")
        return super().history_form_view(request, object_id, version_id, extra_context=extra_context)


class CappedPaginator(Paginator):
    """Counts at most CAP rows. Counting 100,000 filtered rows on every page view costs more
    than the page itself; past CAP the list says "10,000+" and a filter or search narrows it."""

    CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.CAP + 1].count()


class LocationScopedAdmin(admin.ModelAdmin):
    """Staff see only their locations' rows; `location_path` says how a row reaches one.

    A record's own pages (change, history) are rendered on its location's wall clock, so
    every time Django shows there (read-only fields, history dates) is that location's,
    labelled with its zone (financing.display). Lists spanning locations format each row
    with its own location instead (see the list columns).
    """

    location_path = "location_id"
    show_facets = ShowFacets.NEVER  # facet counts are a COUNT per filter choice per page view
    paginator = CappedPaginator

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user, self.location_path)

    def location_of(self, obj):
        """The Location a record belongs to, by following `location_path`."""
        if obj is None or self.location_path == "pk":
            return obj
        for name in self.location_path.removesuffix("_id").split("__"):
            obj = getattr(obj, name, None)
        return obj

    def _on_location_clock(self, response):
        # Template responses render after the view returns, where no zone is active any
        # more: render now, inside the record's zone.
        context = getattr(response, "context_data", None) or {}
        location = self.location_of(context.get("original") or context.get("object"))
        if location is not None and not getattr(response, "is_rendered", True):
            with timezone.override(display.zone_of(location)):
                response.render()
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._on_location_clock(super().change_view(request, object_id, form_url, extra_context))

    def _zone_of_record(self, request, object_id):
        # simple-history renders its pages inside the view: the zone must be on before.
        path = "timezone" if self.location_path == "pk" else self.location_path.removesuffix("_id") + "__timezone"
        try:
            name = self.get_queryset(request).filter(pk=unquote(object_id)).values_list(path, flat=True).first()
        except (ValueError, TypeError):
            name = None  # not an id: the view itself answers "no such record"
        return display.zone_of(name)

    def history_view(self, request, object_id, extra_context=None):
        with timezone.override(self._zone_of_record(request, object_id)):
            return self._on_location_clock(super().history_view(request, object_id, extra_context=extra_context))

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        with timezone.override(self._zone_of_record(request, object_id)):
            return self._on_location_clock(super().history_form_view(request, object_id, version_id, extra_context=extra_context))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Location:
            kwargs["queryset"] = locations_for(request.user).order_by("code")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def scope_locations(request) -> list[tuple[int, str, str]]:
    """(id, code, PMS kind) of the user's locations, in code order: read once per request,
    for every list filter that offers them (location, PMS product)."""
    if not hasattr(request, "_scope_locations"):
        rows = locations_for(request.user).order_by("code").values_list("pk", "code", "pms_kind")
        request._scope_locations = list(rows)
    return request._scope_locations


class ScopedLocationFilter(admin.SimpleListFilter):
    """The location filter, listing only the user's locations (the stock one lists all)."""

    title = "location"
    parameter_name = "location"
    location_path = "location_id"

    def lookups(self, request, model_admin):
        return [(str(pk), code) for pk, code, _ in scope_locations(request)]

    def queryset(self, request, queryset):
        if self.value():
            location_id = id_param(str(self.value()))
            if location_id is None:
                # A location code or junk in the URL ("²", 20 digits: past SQLite's integer,
                # which was a 500): nothing.
                return queryset.none()
            return queryset.filter(**{self.location_path: location_id})
        return queryset


class ReadOnlyAdmin(LocationScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
