"""The connector sandbox: a real HTTP server implementing the connector contract
(dentrix_bridge/CONTRACT.md, v2.2) for one product per process: Dentrix G-series (the
default), Dentrix Enterprise, Dentrix Ascend or Eaglesoft (`products`: each product's
own rules, wording and record shape).

Chairside's client talks to it over HTTP exactly as it would talk to a practice's
on-premises connector. It keeps its own in-memory store behind one lock (`store`),
judges writes with its own reading of the contract (`rules`, `wire`: never Chairside's
`dentrix_bridge.rules`, so a wrong rule there shows up as a disagreement here), ships
demo patients and their schedule (`demo_data`, `schedule`: the appointment book, contract
v2.1), keeps each patient's ledger payments and adjustments by the practice's own types
(`ledger`, contract v2.2), and can be told to misbehave (``/_sandbox/faults``, from
the kit) so the reliability promises can be tested against real sockets. Its time is
the kit's injectable clock (``POST /_sandbox/clock``): "today" for the agreement-date
rule, the ``created_at`` stamps and the demo schedule.

Run it::

    python -m sandboxes.dentrix --host 127.0.0.1 --port 8102 [--state-file PATH] [--product dentrix_ascend]
        [--time-zone America/New_York]

(environment: DENTRIX_SANDBOX_HOST, DENTRIX_SANDBOX_PORT, DENTRIX_SANDBOX_API_KEY,
DENTRIX_SANDBOX_STATE_FILE, DENTRIX_SANDBOX_PRODUCT, DENTRIX_SANDBOX_TIME_ZONE), or from tests::

    running = serve_in_thread(port=0, product="eaglesoft")   # product defaults to dentrix_g
    ... running.base_url, running.app.store ...
    running.stop()

Persistence is optional and deliberately simple: with a state file every write is
appended to a JSON-lines journal (one {"table", "record"} per line, the full record)
and the journal is replayed over the demo data on start. Reset truncates it.
"""

from .app import DentrixSandbox, main, serve_in_thread
from .store import SandboxStore, make_plan

__all__ = ["DentrixSandbox", "SandboxStore", "main", "make_plan", "serve_in_thread"]
