"""The small kit every sandbox stands on.

- `server`: the threaded Werkzeug server, `serve_in_thread` and the ``python -m`` entry point.
- `app`: the WSGI base class: routing, JSON errors, fault injection on API paths, the
  request log, and the control routes every sandbox shares (health, reset, requests,
  faults, clock).
- `faults`: fault specifications (status errors, latency and timeouts, dropped
  connections, commit-then-error, held answers) and the book that arms them.
- `journal`: an append-only JSON-lines journal, replayed on start.
- `clock`: an injectable clock, real by default, moved forward over ``POST /_sandbox/clock``.

Nothing here knows a partner: each sandbox judges requests with its own rules.
"""
