"""The billing console: the Django admin as the central billing team's operations console.

- Scope: a staff member sees and acts on the locations of their memberships only (a
  superuser on all), in every list, filter, search, autocomplete, export and count. Every
  queryset goes through `scoped()`.
- State belongs to the state machine: case pages are read-only, and every action calls a
  named service in `financing.services`.
- Lists stay fast on big tables: exact-match search on indexed columns, no facet counts,
  no full-table count, related rows joined, not fetched one by one.
"""

from django.contrib import admin

# Importing the modules registers their admins.
from . import cases, locations, records, standards, tomorrow  # noqa: F401

admin.site.site_header = "Chairside billing console"
admin.site.site_title = "Chairside"
# The console is the site: no "View site" link leading back to it ("/" redirects here).
admin.site.site_url = None
