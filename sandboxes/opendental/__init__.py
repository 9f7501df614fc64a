"""The Open Dental sandbox: a real HTTP server implementing the part of Open Dental's API
Chairside uses (https://www.opendental.com/site/apispecification.html), under /api/v1,
as Open Dental documents it: `Authorization: ODFHIR <DeveloperKey>/<CustomerKey>`,
PascalCase fields, "true"/"false", plain-text errors, Dynamic payment plans judged by
Open Dental's own rules and arithmetic (`rules`, `arithmetic`: never Chairside's
`opendental_bridge`), API permissions per key and the one-request-per-second throttle.
See README.md in this directory.

    python -m sandboxes.opendental [--host H] [--port P] [--state-file PATH] [--requests-per-second R] [--time-zone Z]

(environment: OPENDENTAL_SANDBOX_HOST, OPENDENTAL_SANDBOX_PORT (8104),
OPENDENTAL_SANDBOX_DEVELOPER_KEY, OPENDENTAL_SANDBOX_CUSTOMER_KEY, OPENDENTAL_SANDBOX_STATE_FILE,
OPENDENTAL_SANDBOX_RATE, OPENDENTAL_SANDBOX_TIME_ZONE), or from tests `serve_in_thread(port=0)`.
The office's appointment book (Appointments GET, with the demo day always on its next
business day) is `schedule`.
"""

from .app import OpenDentalSandbox, main, serve_in_thread

__all__ = ["OpenDentalSandbox", "main", "serve_in_thread"]
