from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as accounts_views
from config.signin import ConsoleAdminSite, ConsoleLoginForm
from financing.admin import reconciliation, tomorrow
from financing.admin.today import today_view
from financing.dashboard import dashboard_export, dashboard_view

# Every staff account signs in with a second factor: django-otp's admin site refuses anyone
# whose session is not verified by a device, and its login form asks for the code (or, for
# someone without an authenticator app yet, sends them to set one up). Swapping the class
# keeps every ModelAdmin already registered on admin.site (django-otp's own advice).
admin.site.__class__ = ConsoleAdminSite
admin.site.login_form = ConsoleLoginForm
admin.site.login_template = "admin/console_login.html"

# Django's own 400 and 404 (no route matched) are JSON in the API's error shape under /api/.
handler400 = "core.api_errors.bad_request"
handler404 = "core.api_errors.page_not_found"

urlpatterns = [
    # No public site: "/" is the console.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    # Reached after the password, before any session is signed in: not behind admin_view.
    path("admin/sign-in/enrol/", accounts_views.enrol, name="console-enrol"),
    path("admin/sign-in/", admin.site.admin_view(accounts_views.your_sign_in), name="console-sign-in"),
    # The console opens on "Needs you today": it answers /admin/ before the stock index does
    # (which it includes), so "Home", the logo and the login's redirect all land on it.
    path("admin/", admin.site.admin_view(today_view), name="console-today"),
    path("admin/tomorrow/", admin.site.admin_view(tomorrow.tomorrow_view), name="console-tomorrow"),
    path("admin/tomorrow/rerun/", admin.site.admin_view(tomorrow.rerun_view), name="console-tomorrow-rerun"),
    path("admin/tomorrow/<int:prescreen_id>/start/", admin.site.admin_view(tomorrow.start_financing_view), name="console-tomorrow-start"),
    path("admin/tomorrow/<int:prescreen_id>/opt-out/", admin.site.admin_view(tomorrow.opt_out_view), name="console-tomorrow-opt-out"),
    path("admin/reconciliation/", admin.site.admin_view(reconciliation.reconciliation_view), name="console-reconciliation"),
    path("admin/reconciliation/run/", admin.site.admin_view(reconciliation.rerun_view), name="console-reconciliation-rerun"),
    path("admin/reconciliation/export.csv", admin.site.admin_view(reconciliation.export_view), name="console-reconciliation-csv"),
    path("admin/reconciliation/<int:item_id>/post/", admin.site.admin_view(reconciliation.post_missing_view), name="console-reconciliation-post"),
    path("admin/reconciliation/<int:item_id>/resolve/", admin.site.admin_view(reconciliation.resolve_view), name="console-reconciliation-resolve"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="console-dashboard"),
    path("admin/dashboard.csv", admin.site.admin_view(dashboard_export), {"fmt": "csv"}, name="console-dashboard-csv"),
    path("admin/dashboard.xlsx", admin.site.admin_view(dashboard_export), {"fmt": "xlsx"}, name="console-dashboard-xlsx"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("financing.urls")),
    path("api/v1/webhooks/", include("carecredit_bridge.urls")),
    path("api/v1/webhooks/", include("notifications.urls")),
]
