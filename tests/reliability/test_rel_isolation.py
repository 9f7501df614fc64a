"""Promise 8: a user sees and changes only the locations they belong to, in every admin page,
API endpoint and export.

The sweep does not list pages by hand: it walks the URL resolver and the admin registry, so
a page or a model admin added later is swept too (or, when the sweep cannot tell how to
reach it, the test fails and says what to declare). Location "bravo" is full of distinctive
strings; a billing user of "main" with every permission on the business apps' models, and
a verified second factor, requests every page and endpoint, with bravo's ids wherever a URL
takes one, by GET and by POST. No answer may carry a bravo string, and nothing of bravo's
may change.
"""

import io
import re
import zipfile
from collections import deque
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core import serializers
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from financing import services
from financing.models import (
    ArrangementTemplate,
    CaseState,
    FinancedCase,
    Location,
    Membership,
    Prescreen,
    PrescreenOptOut,
    PrescreenRun,
    ShadowComparison,
    TemplateOverride,
)
from notifications.models import Notification

from tests.conftest import capture_and_decide, make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)

BUSINESS_APPS = {"financing", "notifications"}
# Admin models that are not about any location: only superusers manage them (staff get no
# permission on them), so they are out of a location's reach by construction.
GLOBAL_ADMIN_APPS = {"auth", "authtoken", "otp_totp", "axes"}
# How a row reaches its location, where no foreign key chain leads there.
DECLARED_PATHS = {
    "ArrangementTemplate": "locations",  # a group template belongs to the locations using it
    "ContactPreference": "user__memberships__location",  # a person's own settings
}
# Views that are not about anyone's locations, and why.
UNSCOPED_URL_NAMES = {
    "logout": "ends the sweeping session (tested nowhere near bravo's data)",
    "jsi18n": "static translations",
    "schema": "the public API description",
    "api-docs": "the public API description",
    "carecredit-webhook": "authenticated by CareCredit's signature, not a user (tests in test_rel_webhook_security)",
    "twilio-status": "authenticated by Twilio's signature, not a user",
}
# URL parameters the sweep knows how to fill with one of bravo's rows (of the URL's model).
OBJECT_PARAMS = {"object_id", "case_id", "pk", "id"}


def location_path(model, depth=3):
    """The ORM path from `model` to Location through forward foreign keys, or None."""
    if model is Location:
        return "pk"
    if model.__name__ in DECLARED_PATHS:
        return DECLARED_PATHS[model.__name__]
    if model.__name__ == "Notification":
        return None  # reached by its case reference (see bravo_rows)
    queue = deque([(model, "")])
    while queue:
        current, path = queue.popleft()
        for field in current._meta.concrete_fields:
            if field.many_to_one or field.one_to_one:
                target = field.related_model
                step = f"{path}__{field.name}" if path else field.name
                if target is Location:
                    return step
                if step.count("__") < depth - 1:
                    queue.append((target, step))
    return None


def bravo_rows(model, bravo):
    if model.__name__ == "Notification":
        return model._default_manager.filter(reference__in=FinancedCase.objects.filter(location=bravo).values("reference"))
    path = location_path(model)
    assert path is not None, f"{model._meta.label} is in the admin or the API but the sweep cannot tell its location: declare it in DECLARED_PATHS"
    return model._default_manager.filter(**{path: bravo.pk}).distinct()


def snapshot(models, bravo) -> str:
    return "\n".join(serializers.serialize("json", bravo_rows(model, bravo).order_by("pk")) for model in models)


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def unzipped(body: bytes) -> bytes:
    """An XLSX export is a zip of XML: its text, where a marker would show."""
    if not body.startswith(b"PK"):
        return body
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def route_params(route: str) -> list[str]:
    return re.findall(r"<(?:\w+:)?(\w+)>", route) + re.findall(r"\(\?P<(\w+)>", route) + (["__positional__"] * len(re.findall(r"\((?!\?)", route)))


def build_world(sandboxes, template, code, name, tasks, prefix):
    """A location with one of everything: a completed case (agreement, note, notifications,
    a correction, an inbound event), a case that needs attention, a template override and a
    shadow comparison."""
    location = make_location(template, sandboxes, code=code, name=name)
    coordinator = make_user(f"{code}-coord", location)
    make_user(f"{code}-billing", location, role=Membership.Role.BILLING, phone="")
    TemplateOverride.objects.create(location=location, why=f"{prefix}-SECRET-OVERRIDE")
    done = capture_and_decide(sandboxes, location, coordinator, tasks)
    assert FinancedCase.objects.get(pk=done.pk).state == CaseState.COMPLETED
    services.record_correction(done.pk, field="apr", after="1.00", why=f"{prefix}-SECRET-WHY", actor=coordinator)
    services.accept_lender_event(provider="carecredit", event_id=f"evt_{prefix}_secret", application_id=FinancedCase.objects.get(pk=done.pk).application_id, decision=None)
    stuck_patient = sandboxes.new_patient("Thompson", fees=("600.00",))
    stuck = services.capture_case(location=location, patient_id=stuck_patient["patient_id"], treatment_plan_id=stuck_patient["treatment_plan_id"], promotion="reduced_apr_24", actor=coordinator)
    tasks.drain(include_delayed=False)
    if FinancedCase.objects.get(pk=stuck.pk).state == CaseState.APPLICATION_SENT:
        services.refresh_decision(stuck.pk)
        tasks.drain(include_delayed=False)
    assert FinancedCase.objects.get(pk=stuck.pk).state == CaseState.NEEDS_ATTENTION
    ShadowComparison.objects.create(case=stuck, location=location, outcome="missing", detail=f"{prefix}-SECRET-SHADOW", compared_at=timezone.now())
    # Tomorrow's patients: a pre-screened patient (the page and Start financing) and an opt-out.
    now = timezone.now()
    run = PrescreenRun.objects.create(location=location, day=now.date(), run_on=now.date(), status="done", started_at=now, finished_at=now)
    Prescreen.objects.create(
        location=location, run=run, day=run.day, patient_id=stuck_patient["patient_id"], appointment_id=f"{prefix}-APPT",
        starts_at=now, treatment_plan_id=stuck_patient["treatment_plan_id"], planned_fees=Decimal("600.00"),
        patient_short_name=f"{prefix}-SECRET-NAME", result="prequalified", amount=Decimal("1000.00"), screened_at=now,
    )
    PrescreenOptOut.objects.create(location=location, patient_id="4242", note=f"{prefix}-SECRET-OPTOUT")
    return location


class Sweep:
    """Two locations, the user of one, and the record of what every answer showed."""

    def __init__(self, sandboxes, tasks):
        self.alpha = build_world(sandboxes, ArrangementTemplate.objects.create(name="Alpha group standard"), "main", "Alpha Dental", tasks, "ALPHA")
        self.bravo = build_world(sandboxes, ArrangementTemplate.objects.create(name="Bravo Secret Template"), "bravo", "Bravo Secret Dental", tasks, "BRAVO")
        bravo_cases = FinancedCase.objects.filter(location=self.bravo)
        self.markers = {"Bravo Secret", "bravo-coord", "bravo-billing", "BRAVO-SECRET", "evt_BRAVO"}
        self.markers |= set(bravo_cases.values_list("reference", flat=True))
        self.markers |= set(bravo_cases.exclude(application_id="").values_list("application_id", flat=True))

        # Billing at main, staff, every permission on the business apps, a verified 2nd factor.
        self.user = make_user("alpha-billing", self.alpha, role=Membership.Role.BILLING, is_staff=True)
        self.user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=BUSINESS_APPS))
        device = TOTPDevice.objects.create(user=self.user, name="phone", confirmed=True)
        self.client = Client(raise_request_exception=False)
        self.client.force_login(self.user)
        session = self.client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
        self.api = APIClient(raise_request_exception=False)
        self.api.force_authenticate(self.user)

        self.registry = dict(admin.site._registry)
        self.scoped_models = [m for m in self.registry if m._meta.app_label not in GLOBAL_ADMIN_APPS]
        for model in self.scoped_models:
            assert model._meta.app_label in BUSINESS_APPS, f"{model._meta.label}: a new app in the admin; say whether it is global or scoped"
            assert bravo_rows(model, self.bravo).exists(), f"no row of bravo's {model._meta.label}: add one to build_world so the sweep covers it"
        self.before = snapshot(self.scoped_models, self.bravo)
        self.counts_before = {m: m._default_manager.count() for m in self.scoped_models}
        self.seen, self.leaks = [], []

    def check(self, response, what, echo=None, echoes=0):
        """No bravo marker in the answer, and no 5xx. A searched-for marker is echoed by the
        page (the search box, "0 results for …"): it may appear as often as any word does."""
        self.seen.append((what, response.status_code))
        if response.status_code >= 500:
            self.leaks.append(f"{what} answered {response.status_code}")
        body = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
        text = unzipped(body).decode(errors="replace")
        leaked = sorted(m for m in self.markers if m in text and not (m == echo and text.count(m) <= echoes))
        if leaked:
            self.leaks.append(f"{what} shows bravo's {leaked}")
        return response

    def assert_nothing_leaked_or_changed(self):
        after = snapshot(self.scoped_models, self.bravo)
        if after != self.before:
            changed = [line for line in after.splitlines() if line not in self.before.splitlines()]
            self.leaks.append(f"bravo's rows changed: {changed[:3]}")
        assert self.leaks == [], "\n".join(self.leaks)
        for model in self.scoped_models:
            if model not in (FinancedCase, Notification):
                assert model._default_manager.count() == self.counts_before[model], model._meta.label
        assert FinancedCase.objects.filter(location=self.bravo).count() == 2


@pytest.fixture
def sweep(sandboxes, tasks):
    return Sweep(sandboxes, tasks)


def test_no_api_endpoint_reaches_another_locations_cases(sweep):
    own = sweep.check(sweep.api.get("/api/v1/cases/"), "own list")
    assert own.json()["count"] == 2  # it works at all: the user sees their own cases
    routes = 0
    for route, pattern in walk(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None)
        if not route.startswith("api/") or pattern.name in UNSCOPED_URL_NAMES:
            continue
        assert view_class is not None, f"{route}: not a DRF view; say how the sweep should reach it"
        sweep_api_route(sweep.api, sweep.check, route, view_class, route_params(route), sweep.bravo)
        routes += 1
    assert routes >= 2
    sweep.assert_nothing_leaked_or_changed()


def test_no_admin_page_or_export_reaches_another_locations_records(sweep):
    client, bravo, check = sweep.client, sweep.bravo, sweep.check
    own = check(client.get("/admin/financing/financedcase/"), "own changelist")
    assert own.status_code == 200 and FinancedCase.objects.filter(location=sweep.alpha).first().reference in own.content.decode()
    # The sweep reads inside an XLSX export, where a leak would otherwise hide in the zip.
    own_xlsx = unzipped(b"".join(client.get("/admin/financing/financedcase/export.xlsx").streaming_content))
    assert FinancedCase.objects.filter(location=sweep.alpha).first().reference in own_xlsx.decode()

    def echo_count(url, params):
        nonsense = "Qx7nonsense"
        return client.get(url, params(nonsense)).content.decode().count(nonsense)

    # 1. Every model admin: list, search, filter, actions, add form, autocomplete.
    for model, model_admin in sweep.registry.items():
        if model._meta.app_label in GLOBAL_ADMIN_APPS:
            continue
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        check(client.get(base), f"{base} list")
        echoes = echo_count(base, lambda term: {"q": term})
        for marker in sweep.markers:
            check(client.get(base, {"q": marker}), f"{base} search {marker}", echo=marker, echoes=echoes)
        check(client.get(base, {"location": bravo.pk}), f"{base} filtered to bravo")
        check(client.get(base, {"location": bravo.code}), f"{base} filtered to bravo by code")
        check(client.get(base, {"location__id__exact": bravo.pk}), f"{base} filtered to bravo (stock filter)")
        check(client.get(base + "add/"), f"{base} add form")
        rows = list(bravo_rows(model, bravo).values_list("pk", flat=True))
        for action in model_admin.get_actions(_request_for(sweep.user)) or {}:
            check(client.post(base, {"action": action, "_selected_action": rows, "index": 0}), f"{base} action {action}")
            check(client.post(base, {"action": action, "_selected_action": rows, "index": 0, "post": "yes", "reason": "x"}), f"{base} action {action} confirmed")
        for field in getattr(model_admin, "autocomplete_fields", ()):
            for term in ("", "bravo", "Bravo"):
                params = {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": field, "term": term}
                response = check(client.get("/admin/autocomplete/", params), f"autocomplete {model.__name__}.{field} {term!r}")
                assert response.status_code in (200, 403)
        for inline in model_admin.inlines:
            for field in getattr(inline, "autocomplete_fields", ()):
                params = {"app_label": inline.model._meta.app_label, "model_name": inline.model._meta.model_name, "field_name": field, "term": ""}
                check(client.get("/admin/autocomplete/", params), f"autocomplete {inline.model.__name__}.{field}")

    # 2. Every other URL outside the API, with bravo's ids wherever it takes one, GET and POST.
    history_ids = {}
    for model in sweep.scoped_models:
        history = getattr(model, "history", None)
        if history is not None and hasattr(history, "model"):
            history_ids[model] = list(history.model.objects.filter(id__in=bravo_rows(model, bravo).values("pk")).values_list("id", "history_id"))
    for route, pattern in walk(get_resolver().url_patterns):
        if route.startswith("api/") or (pattern.name or "") in UNSCOPED_URL_NAMES:
            continue
        params = route_params(route)
        if route.startswith("admin/") and params:
            for url in admin_urls_for_bravo(route, params, bravo, history_ids, sweep.registry):
                check(client.get(url), f"GET {url}")
                check(client.post(url, {"why": "x", "reason": "x", "field": "apr", "after": "2.00", "post": "yes"}), f"POST {url}")
            continue
        assert not params, f"{route}: the sweep does not know how to fill {params}; teach it or declare the view in UNSCOPED_URL_NAMES"
        url = "/" + route
        check(client.get(url), f"GET {url}")
        if not url.endswith("/add/"):  # (an add form takes GET values as initial data)
            check(client.get(url, {"location": bravo.pk}), f"GET {url}?location=id")
            check(client.get(url, {"location": bravo.code}), f"GET {url}?location=code")
    assert len(sweep.seen) > 150
    sweep.assert_nothing_leaked_or_changed()


def _request_for(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def admin_urls_for_bravo(route, params, bravo, history_ids, registry):
    """The admin URL filled with bravo's rows of the model the URL belongs to."""
    if params == ["app_label"]:  # an app's index page
        return [f"/admin/{label}/" for label in sorted(BUSINESS_APPS)]
    if params == ["url"]:  # the catch-all: an unknown admin address
        return [f"/admin/financing/financedcase/{FinancedCase.objects.filter(location=bravo).first().pk}/nowhere/"]
    if route.startswith("admin/tomorrow/"):  # Tomorrow's patients: a pre-screened patient's actions
        assert params == ["prescreen_id"], f"{route}: the sweep does not know how to fill {params}"
        rows = list(Prescreen.objects.filter(location=bravo).values_list("pk", flat=True))
        assert rows, f"no bravo Prescreen to fill {route}"
        return ["/" + re.sub(r"<(?:\w+:)?\w+>", str(pk), route) for pk in rows]
    model = _model_of_admin_route(route, registry)
    if route.startswith("admin/r/"):  # view_on_site: content type, then object
        from django.contrib.contenttypes.models import ContentType

        ct = ContentType.objects.get_for_model(FinancedCase)
        return [f"/admin/r/{ct.pk}/{pk}/" for pk in FinancedCase.objects.filter(location=bravo).values_list("pk", flat=True)]
    if model is None or model._meta.app_label in GLOBAL_ADMIN_APPS:
        return []
    rows = list(bravo_rows(model, bravo).values_list("pk", flat=True))
    assert rows, f"no bravo {model.__name__} to fill {route}"
    prefix = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    tail = route.split(f"{model._meta.model_name}/", 1)[1]
    urls = []
    if tail.startswith("^([^/]+)/history/([^/]+)/$"):  # simple-history's view of one past version
        return [f"{prefix}{pk}/history/{history_id}/" for pk, history_id in history_ids.get(model, [])]
    unknown = [p for p in params if p not in OBJECT_PARAMS]
    assert not unknown, f"{route}: the sweep does not know how to fill {unknown}"
    for pk in rows:
        urls.append(prefix + re.sub(r"<(?:\w+:)?\w+>", str(pk), tail))
    return urls


def _model_of_admin_route(route, registry):
    for model in registry:
        if route.startswith(f"admin/{model._meta.app_label}/{model._meta.model_name}/"):
            return model
    return None


def sweep_api_route(api, check, route, view_class, params, bravo):
    serializer = getattr(view_class, "serializer_class", None)
    model = getattr(getattr(serializer, "Meta", None), "model", None) or getattr(getattr(view_class, "queryset", None), "model", None)
    assert model is not None, f"{route}: the sweep cannot tell which model this API view serves"
    url = "/" + route.replace("^", "").replace("$", "")
    if not params:
        check(api.get(url), f"GET {url}")
        # Another location's code is refused (a 400 naming the parameter), not answered.
        refused = check(api.get(url, {"location": bravo.code}), f"GET {url}?location=bravo")
        assert refused.status_code == 400 and set(refused.json()["errors"]) == {"location"}, refused.json()
        # Every other filter, with values that match bravo's cases, still answers only one's own.
        bravo_cases = FinancedCase.objects.filter(location=bravo)
        queries = [{"state": state} for state in set(bravo_cases.values_list("state", flat=True))]
        queries += [{"promotion": p} for p in set(bravo_cases.values_list("promotion", flat=True))]
        queries.append({"captured_from": "2000-01-01", "captured_to": "2999-12-31"})
        for query in queries:
            answer = check(api.get(url, query), f"GET {url}?{query}")
            assert answer.status_code == 200, (query, answer.json())
            assert not bravo_cases.filter(pk__in=[r["id"] for r in answer.json()["results"]]).exists(), query
        response = check(api.post(url, {"location": bravo.code, "patient_id": "1001", "treatment_plan_id": "5001"}, format="json"), f"POST {url} into bravo")
        assert response.status_code in (400, 403, 405), (url, response.status_code)
        return
    assert set(params) <= OBJECT_PARAMS, f"{route}: the sweep does not know how to fill {params}"
    for pk in bravo_rows(model, bravo).values_list("pk", flat=True):
        filled = re.sub(r"\(\?P<\w+>[^)]*\)", str(pk), url)
        for method in ("get", "put", "patch", "delete"):
            response = check(getattr(api, method)(filled, {"state": "completed"}, format="json"), f"{method.upper()} {filled}")
            assert response.status_code in (404, 405), (method, filled, response.status_code)
