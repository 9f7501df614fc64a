"""The partner sandboxes for the benchmark, one process each, with a request recorder.

    gunicorn "bench.sandboxes:make_app('carecredit', 8201)" -b 127.0.0.1:8201 -k gthread --threads 16
    gunicorn "bench.sandboxes:make_app('dentrix', 8202)" -b 127.0.0.1:8202 -k gthread --threads 16

Each benchmark location reaches a sandbox under a prefix of its own (``/c/<n>/v1/...``), so
every location is a partner connection of its own, as in production, and the recorder can
tell the connections apart. It keeps ``(arrival time, connection, method, path shape,
status)`` for every /v1 request (never a body), served at ``/_bench/requests?start=<i>``.
A few bulk seeding endpoints (``/_bench/...``) create thousands of patients or lender
applications without thousands of HTTP round trips.
"""

from __future__ import annotations

import json
import re
import threading
import time
from decimal import Decimal

_ID_SEGMENT = re.compile(r"/(\d+|app_[0-9a-f]+)(?=/|$)")


def path_shape(path: str) -> str:
    """``/v1/patients/2001/ledger-notes`` -> ``/v1/patients/*/ledger-notes``."""
    return _ID_SEGMENT.sub("/*", path)


class Recorder:
    """WSGI middleware: per-connection prefixes, the request log and the bench control API."""

    def __init__(self, app, kind: str):
        self.app = app
        self.kind = kind
        self.log: list[tuple[float, str, str, str, int | None]] = []
        self.lock = threading.Lock()
        self.delays: dict[str, float] = {}  # connection -> seconds added before answering

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/"):
            return self.control(environ, start_response, path)
        connection = ""
        if path.startswith("/c/"):
            connection, _, rest = path[3:].partition("/")
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/c/" + connection
            environ["PATH_INFO"] = path = "/" + rest
        if not path.startswith("/v1/"):
            return self.app(environ, start_response)
        arrived = time.time()
        if self.delays.get(connection):
            time.sleep(self.delays[connection])
        seen = []

        def recording_start_response(status, headers, exc_info=None):
            seen.append(int(status[:3]))
            return start_response(status, headers, exc_info)

        result = self.app(environ, recording_start_response)
        with self.lock:
            self.log.append((arrived, connection, environ["REQUEST_METHOD"], path_shape(path), seen[0] if seen else None))
        return result

    # --- /_bench ------------------------------------------------------------------------

    def control(self, environ, start_response, path):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        if path == "/_bench/requests":
            start = int(request.args.get("start", "0"))
            with self.lock:
                entries = self.log[start:]
                end = start + len(entries)
            payload = {"next": end, "entries": entries}
        elif path == "/_bench/delay":
            body = request.get_json()
            self.delays[body["connection"]] = float(body["seconds"])
            payload = {"delays": self.delays}
        elif path == "/_bench/patients" and self.kind == "dentrix":
            payload = self.seed_patients(request.get_json())
        elif path == "/_bench/applications" and self.kind == "carecredit":
            payload = self.seed_applications(request.get_json())
        elif path == "/_bench/config" and self.kind == "carecredit":
            payload = self.app.update_config(**request.get_json())
        else:
            return Response(json.dumps({"error": "no such bench endpoint"}), 404, mimetype="application/json")(
                environ, start_response
            )
        return Response(json.dumps(payload), 200, mimetype="application/json")(environ, start_response)

    def seed_patients(self, body):
        """[{last_name, fees: [...]}] -> [[patient_id, treatment_plan_id], ...] (accepted plans)."""
        from sandboxes.dentrix import make_plan

        store = self.app.store
        created = []
        with store.lock:
            for item in body["patients"]:
                patient_id = store.new_id("patients")
                store.put("patients", {
                    "patient_id": patient_id,
                    "guarantor_id": patient_id,
                    "first_name": item.get("first_name", "Ava"),
                    "last_name": item["last_name"],
                    "birth_date": "1980-04-12",
                    "phone": "+15555550188",
                    "email": f"patient{patient_id}@example.com",
                    "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
                    "status": "patient",
                })
                procedures = [
                    {"code": "D2740", "tooth": str(3 + i), "surface": "", "fee": fee} for i, fee in enumerate(item["fees"])
                ]
                plan_id = store.new_id("plans")
                store.put("plans", make_plan(plan_id, patient_id, procedures))
                created.append([patient_id, plan_id])
        return created

    def seed_applications(self, body):
        """[{merchant_number, reference, requested_amount, last_name, created_ago, decision_delay}] -> ids."""
        now = time.time()
        return [
            self.app.seed_application(
                merchant_number=item["merchant_number"],
                reference=item["reference"],
                requested_amount=Decimal(item["requested_amount"]),
                last_name=item["last_name"],
                callback_url=item.get("callback_url", ""),
                created_at=now - item.get("created_ago", 0),
                decision_delay=item.get("decision_delay"),
            )["application_id"]
            for item in body["applications"]
        ]


def make_app(kind: str, port: int, webhook_concurrency: int = 8):
    """The sandbox `kind` behind the recorder, for a WSGI server in one process.

    The benchmark serves it with gunicorn (gthread, one process: the store lives in memory),
    which keeps connections alive like a real partner API; Werkzeug's development server
    closes every connection, which would add a TCP handshake to every call.
    """
    if kind == "carecredit":
        from sandboxes.carecredit import CareCreditSandbox

        # The simulated patient completes the hosted application a second after the link
        # goes out (a real one takes minutes): the decision then always comes after
        # Chairside has recorded the application, by webhook, as in production, and the
        # calls made at capture have left a connector's one-second window by then.
        app = CareCreditSandbox(decision_delay=1.0, pending_delay=0.5, webhook_concurrency=webhook_concurrency)
        app.server_url = f"http://127.0.0.1:{port}"
        app.start_dispatcher()
    else:
        from sandboxes.dentrix import DentrixSandbox

        app = DentrixSandbox()
    return Recorder(app, kind)
