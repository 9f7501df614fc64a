"""A local Twilio: a real HTTP server that speaks Twilio's Messages API.

It exists so `twilio_bridge.client.TwilioBackend` runs unchanged against it in tests and
demos (point TWILIO_API_URL here). The API is in `api` (with Twilio's magic test
numbers); errors are Twilio-shaped (``{"code", "message", "more_info", "status"}``).
Accepted messages get status callbacks signed with X-Twilio-Signature, like Twilio's
(the sandbox's own `app.signature`, from Twilio's documented scheme): ``sent``, then
``delivered`` (or ``undelivered`` with an ErrorCode).

Run it: ``python -m sandboxes.twilio --port 8103``. From tests::

    twilio = serve_in_thread(port=0)      # twilio.base_url, twilio.app
    twilio.app.fail_next(503, times=2)    # or 429; or delay_after_accept(seconds)
    twilio.app.messages                   # every accepted message

Control API: ``GET /_sandbox/messages``, ``GET /_sandbox/callbacks``, and the kit's
``POST /_sandbox/reset``, ``GET /_sandbox/requests``, ``GET|POST|DELETE /_sandbox/faults``
(the kit's fault specs, or the shorthand ``{"status": 503, "times": 2}`` /
``{"delay_after_accept": 3.0}``), ``GET|POST /_sandbox/clock``.
"""

from .app import ACCOUNT_SID, AUTH_TOKEN, TwilioSandbox, main, serve_in_thread, signature

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "TwilioSandbox", "main", "serve_in_thread", "signature"]
