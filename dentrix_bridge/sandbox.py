"""The Dentrix sandbox: a real HTTP server implementing the connector contract (CONTRACT.md).

It is a first-class implementation of the contract, not a mock: Chairside's client talks
to it over HTTP exactly as it would talk to a practice's on-premises connector. It has
its own in-memory store behind one lock, enforces Dentrix's rules (rules.py, the same
functions Chairside validates with, plus the checks that need the store), ships demo
patients (demo_data.py), and can be told to misbehave (/_sandbox/faults) so the
reliability promises can be tested against real sockets.

Run it:

    python -m dentrix_bridge.sandbox --host 127.0.0.1 --port 8102 [--state-file PATH]

or from tests:

    running = serve_in_thread(port=0)
    ... running.base_url, running.app.store ...
    running.stop()

Persistence is optional and deliberately simple: with a state file every write is
appended to a JSON-lines journal (one {"table", "record"} per line, the full record)
and the journal is replayed over the demo data on start. Reset truncates it.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from financing.ports import AgreementRequest, LedgerNoteType

from . import rules, wire
from .demo_data import DEMO_PATIENTS, DEMO_PLANS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8102
DEFAULT_API_KEY = "sandbox"

# Ids handed out after the demo data; each table has its own range so an id in a log
# line says what it is (2xxx patient, 6xxx plan, 7xxx agreement, 8xxx note).
FIRST_NEW_ID = {"patients": 2001, "plans": 6001, "agreements": 7001, "notes": 8001}
TABLES = tuple(FIRST_NEW_ID)
ID_FIELDS = {"patients": "patient_id", "plans": "treatment_plan_id", "agreements": "agreement_id", "notes": "note_id"}
# The tables listed per owner, and the field that names the owner: kept as an index so a
# list request costs the records it returns, not a scan of every record (benchmarks run
# tens of thousands of patients through one sandbox).
OWNER_FIELDS = {"plans": "patient_id", "agreements": "guarantor_id", "notes": "patient_id"}

FAULT_MODES = ("error", "latency", "timeout", "drop", "commit_then_error", "hold")
FAULT_METHODS = ("GET", "POST", "PUT", "DELETE", "*")


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class SandboxError(Exception):
    """A request the sandbox refuses; becomes a JSON error response."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


def _field_errors(errors: dict[str, str], what: str) -> SandboxError:
    """400 with a one-line summary: the only problem, or the first and a count."""
    first = next(iter(errors.values()))
    summary = first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more problem(s) with the {what})"
    return SandboxError(400, summary, dict(errors))


# --- the store ----------------------------------------------------------------------------


class SandboxStore:
    """Everything the sandbox knows, in plain dicts shaped like the wire JSON.

    One lock guards all of it, and every check-then-write (e.g. "no active agreement
    yet" then "insert") happens under that lock, so concurrent requests cannot both pass
    a check. Records are stored as JSON-ready dicts so the journal, the responses and
    the tests all see the same thing.
    """

    def __init__(self, journal_path: str | None = None):
        self.lock = threading.RLock()
        self.journal_path = journal_path
        self.tables: dict[str, dict[str, dict]] = {name: {} for name in TABLES}
        # table -> owner id -> record ids in insertion order (a dict used as an ordered set)
        self.owned: dict[str, dict[str, dict[str, None]]] = {name: {} for name in OWNER_FIELDS}
        self.next_id: dict[str, int] = dict(FIRST_NEW_ID)
        self.request_log: list[dict] = []
        self.faults: list[dict] = []
        if journal_path:
            # `make run` points this into a var/ directory that may not exist yet.
            os.makedirs(os.path.dirname(os.path.abspath(journal_path)), exist_ok=True)
        with self.lock:
            self._seed_demo_data()
            if journal_path:
                self._replay_journal()

    # -- reading (callers hold the lock, or accept a snapshot)

    @property
    def patients(self) -> dict[str, dict]:
        return self.tables["patients"]

    @property
    def plans(self) -> dict[str, dict]:
        return self.tables["plans"]

    @property
    def agreements(self) -> dict[str, dict]:
        return self.tables["agreements"]

    @property
    def notes(self) -> dict[str, dict]:
        return self.tables["notes"]

    def plans_for(self, patient_id: str) -> list[dict]:
        return self._owned_by("plans", patient_id)

    def agreements_for(self, guarantor_id: str) -> list[dict]:
        return self._owned_by("agreements", guarantor_id)

    def notes_for(self, patient_id: str) -> list[dict]:
        return self._owned_by("notes", patient_id)

    def _owned_by(self, table: str, owner_id: str) -> list[dict]:
        with self.lock:
            return [self.tables[table][i] for i in self.owned[table].get(owner_id, ())]

    # -- writing

    def put(self, table: str, record: dict) -> dict:
        """Insert or replace one record: journal first, then memory.

        If the journal write fails the request fails (500) and memory is unchanged, so
        what a client was told was saved is always what a restart will replay.
        """
        with self.lock:
            if self.journal_path:
                line = json.dumps({"table": table, "record": record}, sort_keys=True)
                with open(self.journal_path, "a", encoding="utf-8") as journal:
                    journal.write(line + "\n")
                    journal.flush()
                    os.fsync(journal.fileno())
            self._apply(table, record)
            return record

    def new_id(self, table: str) -> str:
        with self.lock:
            value = self.next_id[table]
            self.next_id[table] = value + 1
            return str(value)

    def reset(self) -> None:
        """Back to the demo data: every table, the request log, the faults, the journal."""
        with self.lock:
            self.tables = {name: {} for name in TABLES}
            self.owned = {name: {} for name in OWNER_FIELDS}
            self.next_id = dict(FIRST_NEW_ID)
            self.request_log.clear()
            self.faults.clear()
            if self.journal_path:
                open(self.journal_path, "w", encoding="utf-8").close()
            self._seed_demo_data()

    # -- internals

    def _apply(self, table: str, record: dict) -> None:
        record_id = record[ID_FIELDS[table]]
        previous = self.tables[table].get(record_id)
        self.tables[table][record_id] = record
        if table in OWNER_FIELDS:
            owner_field = OWNER_FIELDS[table]
            if previous is not None and previous[owner_field] != record[owner_field]:
                self.owned[table].get(previous[owner_field], {}).pop(record_id, None)
            self.owned[table].setdefault(record[owner_field], {})[record_id] = None
        # Keep handing out fresh ids after a replay.
        if record_id.isdigit():
            self.next_id[table] = max(self.next_id[table], int(record_id) + 1)

    def _seed_demo_data(self) -> None:
        # Demo data is not journaled: it is re-created on every start anyway.
        for patient in DEMO_PATIENTS:
            self._apply("patients", json.loads(json.dumps(patient)))
        for plan_id, patient_id, procedures in DEMO_PLANS:
            self._apply("plans", make_plan(plan_id, patient_id, [dict(p) for p in procedures]))
        # The demo ids must not move the counters for new records.
        self.next_id = dict(FIRST_NEW_ID)

    def _replay_journal(self) -> None:
        if not os.path.exists(self.journal_path):
            return
        with open(self.journal_path, encoding="utf-8") as journal:
            lines = journal.read().split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                table, record = entry["table"], entry["record"]
                if table not in TABLES:
                    raise ValueError(f"unknown table {table!r}")
            except (ValueError, KeyError, TypeError) as exc:
                is_last = all(not rest.strip() for rest in lines[number:])
                if is_last:
                    # A write torn by a crash: it was never acknowledged to a client.
                    log.warning("Ignoring a torn last line %d in the journal %s", number, self.journal_path)
                    continue
                raise RuntimeError(
                    f"Dentrix sandbox journal {self.journal_path} is corrupt at line {number}: {exc}. "
                    "Move it aside or delete it to start from the demo data."
                ) from exc
            self._apply(table, record)


def make_plan(plan_id: str, patient_id: str, procedures: list[dict], status: str = "accepted") -> dict:
    total = sum((Decimal(p["fee"]) for p in procedures), Decimal("0.00"))
    return {
        "treatment_plan_id": plan_id,
        "patient_id": patient_id,
        "name": "Treatment Plan",  # Dentrix's default case name
        "status": status,
        "procedures": procedures,
        "total": wire.format_money(total),
    }


# --- the WSGI app -------------------------------------------------------------------------


class SandboxRequest(Request):
    # Nothing in the contract comes close; a bigger body is a mistake, not data.
    max_content_length = 1024 * 1024


class DentrixSandbox:
    """The WSGI application. `store` is public so tests can look inside."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, state_file: str | None = None):
        self.api_key = api_key
        self.store = SandboxStore(state_file)
        # Set on shutdown: wakes requests sleeping in a latency/timeout fault.
        self.stopping = threading.Event()
        self.url_map = Map(
            [
                Rule("/v1/patients/<patient_id>", methods=["GET"], endpoint="get_patient"),
                Rule("/v1/patients/<patient_id>/treatment-plans", methods=["GET"], endpoint="list_plans"),
                Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["GET"], endpoint="list_agreements"),
                Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["POST"], endpoint="create_agreement"),
                Rule("/v1/patients/<patient_id>/ledger-notes", methods=["GET"], endpoint="list_notes"),
                Rule("/v1/patients/<patient_id>/ledger-notes", methods=["POST"], endpoint="create_note"),
                Rule("/_sandbox/health", methods=["GET"], endpoint="sandbox_health"),
                Rule("/_sandbox/patients", methods=["POST"], endpoint="sandbox_create_patient"),
                Rule("/_sandbox/treatment-plans/<plan_id>", methods=["PUT"], endpoint="sandbox_set_plan_status"),
                Rule(
                    "/_sandbox/payment-agreements/<agreement_id>",
                    methods=["PUT"],
                    endpoint="sandbox_set_agreement_status",
                ),
                Rule("/_sandbox/reset", methods=["POST"], endpoint="sandbox_reset"),
                Rule("/_sandbox/requests", methods=["GET"], endpoint="sandbox_requests"),
                Rule("/_sandbox/faults", methods=["GET"], endpoint="sandbox_list_faults"),
                Rule("/_sandbox/faults", methods=["POST"], endpoint="sandbox_add_fault"),
                Rule("/_sandbox/faults", methods=["DELETE"], endpoint="sandbox_clear_faults"),
            ],
            strict_slashes=False,
        )

    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = SandboxRequest(environ)
        is_connector_call = request.path == "/v1" or request.path.startswith("/v1/")
        fault = self._take_fault(request) if is_connector_call else None
        mode = fault["mode"] if fault else None
        try:
            if mode == "error":
                # Like a gateway in front of the connector: nothing reaches Dentrix.
                response = self._fault_response(fault)
            else:
                if mode in ("latency", "timeout"):
                    # An Event wait, not time.sleep, so stop() does not hang on it.
                    if self.stopping.wait(fault["latency_ms"] / 1000):
                        raise ConnectionAbortedError("sandbox is stopping")
                response = self._dispatch(request)
                if mode == "hold":
                    # Committed, answer held back: the window a worker can be killed in
                    # after the partner wrote and before the worker heard about it.
                    if self.stopping.wait(fault["latency_ms"] / 1000):
                        raise ConnectionAbortedError("sandbox is stopping")
                if mode == "drop":
                    self._log_request(request, None, mode)
                    self._drop_connection(environ)
                if mode == "commit_then_error":
                    response = self._fault_response(fault)
        except ConnectionAbortedError:
            raise  # werkzeug's server treats this as a dropped connection, quietly
        except Exception:
            # Never let a request thread die silently: log it and say so in JSON.
            log.exception("Dentrix sandbox failed on %s %s", request.method, request.path)
            response = _json({"error": "The Dentrix sandbox failed while handling this request (see its log)."}, 500)
        if is_connector_call:
            self._log_request(request, response.status_code, mode)
        return response(environ, start_response)

    # -- plumbing

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return _json({"error": f"No such endpoint: {request.method} {request.path}"}, 404)
        except MethodNotAllowed as exc:
            return _json({"error": f"{request.method} is not allowed on {request.path}."}, 405,
                         headers={"Allow": ", ".join(exc.valid_methods or [])})
        except HTTPException as exc:  # e.g. a redirect for a trailing slash
            return _json({"error": exc.description or exc.name}, exc.code or 400)
        try:
            if not endpoint.startswith("sandbox_"):
                self._check_api_key(request)
            return getattr(self, endpoint)(request, **args)
        except SandboxError as exc:
            body: dict[str, Any] = {"error": exc.message}
            if exc.fields is not None:
                body["fields"] = exc.fields
            return _json(body, exc.status)
        except HTTPException as exc:  # e.g. 413 from max_content_length
            return _json({"error": exc.description or exc.name}, exc.code or 400)

    def _check_api_key(self, request: Request) -> None:
        given = request.headers.get("X-API-Key", "")
        if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise SandboxError(401, "Missing or wrong API key: send the connector's key in the X-API-Key header.")

    def _log_request(self, request: Request, status: int | None, fault: str | None) -> None:
        with self.store.lock:
            # Only the method, path (ids only) and outcome: never a body.
            self.store.request_log.append(
                {"method": request.method, "path": request.path, "status": status, "fault": fault}
            )

    def _take_fault(self, request: Request) -> dict | None:
        """The first matching fault, with one use of it consumed."""
        with self.store.lock:
            for fault in self.store.faults:
                if fault["method"] not in ("*", request.method):
                    continue
                if not request.path.startswith(fault["path_prefix"]):
                    continue
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self.store.faults.remove(fault)
                return dict(fault)
        return None

    @staticmethod
    def _fault_response(fault: dict) -> Response:
        headers = {}
        if fault.get("retry_after") is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        message = (
            "The Dentrix connector saved the change but then failed (sandbox fault)."
            if fault["mode"] == "commit_then_error"
            else "The Dentrix connector is temporarily unavailable (sandbox fault)."
        )
        return _json({"error": message}, fault["status"], headers=headers)

    @staticmethod
    def _drop_connection(environ: dict) -> None:
        """Close the connection without a response, after the work is committed.

        shutdown() (not close()) so werkzeug can still finish with the socket object;
        the client reads EOF where the status line should be, which requests reports as
        a ConnectionError. Raising ConnectionAbortedError tells werkzeug's handler the
        connection is gone, so it neither writes a response nor logs a traceback.
        """
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionAbortedError("sandbox fault: drop the connection after committing")

    @staticmethod
    def _json_body(request: Request) -> dict:
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):
            raise SandboxError(400, "The request body must be a JSON object.", {})
        return data

    def _patient_or_404(self, patient_id: str) -> dict:
        patient = self.store.patients.get(patient_id)
        if patient is None:
            raise SandboxError(404, f"Patient {patient_id} was not found in Dentrix.")
        return patient

    def _account_or_404(self, guarantor_id: str) -> dict:
        """Agreements belong to an account, and an account is a guarantor's."""
        patient = self.store.patients.get(guarantor_id)
        if patient is None:
            raise SandboxError(404, f"Account {guarantor_id} was not found in Dentrix.")
        if patient["guarantor_id"] != guarantor_id:
            raise SandboxError(
                404,
                f"Account {guarantor_id} was not found in Dentrix: patient {guarantor_id} is on "
                f"account {patient['guarantor_id']}.",
            )
        return patient

    # -- /v1: the connector contract

    def get_patient(self, request: Request, patient_id: str) -> Response:
        with self.store.lock:
            return _json(self._patient_or_404(patient_id))

    def list_plans(self, request: Request, patient_id: str) -> Response:
        with self.store.lock:
            self._patient_or_404(patient_id)
            return _json(self.store.plans_for(patient_id))

    def list_agreements(self, request: Request, guarantor_id: str) -> Response:
        with self.store.lock:
            self._account_or_404(guarantor_id)
            return _json(self.store.agreements_for(guarantor_id))

    def create_agreement(self, request: Request, guarantor_id: str) -> Response:
        payload = self._json_body(request)
        agreement_request, shape_errors = wire.agreement_request_from_json(guarantor_id, payload)
        # Hold the lock from the account check to the insert: the one-active-agreement
        # rule must hold under concurrent requests too.
        with self.store.lock:
            self._account_or_404(guarantor_id)
            errors = {**rules.validate_agreement(agreement_request), **shape_errors}
            if errors:
                raise _field_errors(errors, "payment agreement")
            for existing in self.store.agreements_for(guarantor_id):
                if existing["status"] == "active":
                    raise SandboxError(
                        409,
                        f"Account {guarantor_id} already has an active payment agreement "
                        f"(agreement {existing['agreement_id']}). "
                        "Dentrix allows one active agreement per account.",
                    )
            record = _agreement_record(self.store.new_id("agreements"), agreement_request)
            self.store.put("agreements", record)
        return _json(record, 201)

    def list_notes(self, request: Request, patient_id: str) -> Response:
        with self.store.lock:
            self._patient_or_404(patient_id)
            return _json(self.store.notes_for(patient_id))

    def create_note(self, request: Request, patient_id: str) -> Response:
        payload = self._json_body(request)
        note_type, text = payload.get("type"), payload.get("text")
        with self.store.lock:
            self._patient_or_404(patient_id)
            errors = rules.validate_ledger_note(note_type, text)
            if errors:
                raise _field_errors(errors, "ledger note")
            record = {
                "note_id": self.store.new_id("notes"),
                "patient_id": patient_id,
                "type": LedgerNoteType(note_type).value,
                "text": text,
                "created_at": _now(),
            }
            self.store.put("notes", record)
        return _json(record, 201)

    # -- /_sandbox: control API for tests, demos and seeding scripts (no API key)

    def sandbox_health(self, request: Request) -> Response:
        return _json({"ok": True})

    def sandbox_create_patient(self, request: Request) -> Response:
        payload = self._json_body(request)
        fields, errors = _read_new_patient(payload)
        procedures, procedure_errors = _read_procedures(payload.get("procedures"))
        errors.update(procedure_errors)
        guarantor_id = payload.get("guarantor_id")
        with self.store.lock:
            if guarantor_id is not None:
                guarantor = self.store.patients.get(str(guarantor_id))
                if guarantor is None:
                    errors["guarantor_id"] = f"Patient {guarantor_id} was not found in Dentrix."
                elif guarantor["guarantor_id"] != guarantor["patient_id"]:
                    errors["guarantor_id"] = (
                        f"Patient {guarantor_id} cannot be a guarantor: they are on "
                        f"account {guarantor['guarantor_id']}."
                    )
            if errors:
                raise _field_errors(errors, "patient")
            patient_id = self.store.new_id("patients")
            patient = {
                "patient_id": patient_id,
                "guarantor_id": str(guarantor_id) if guarantor_id is not None else patient_id,
                **fields,
                "status": "patient",
            }
            self.store.put("patients", patient)
            plan_id = None
            if procedures:
                plan_id = self.store.new_id("plans")
                self.store.put("plans", make_plan(plan_id, patient_id, procedures))
        return _json(
            {"patient_id": patient_id, "guarantor_id": patient["guarantor_id"], "treatment_plan_id": plan_id},
            201,
        )

    def sandbox_set_plan_status(self, request: Request, plan_id: str) -> Response:
        status = self._json_body(request).get("status")
        allowed = ("created", "proposed", "accepted", "rejected", "completed")
        if status not in allowed:
            raise SandboxError(400, "Status must be one of " + ", ".join(allowed) + ".",
                               {"status": "Status must be one of " + ", ".join(allowed) + "."})
        with self.store.lock:
            plan = self.store.plans.get(plan_id)
            if plan is None:
                raise SandboxError(404, f"Treatment plan {plan_id} was not found in Dentrix.")
            updated = {**plan, "status": status}
            self.store.put("plans", updated)
        return _json(updated)

    def sandbox_set_agreement_status(self, request: Request, agreement_id: str) -> Response:
        """Inactivate (or reactivate) an agreement, as a billing clerk would in Dentrix."""
        status = self._json_body(request).get("status")
        if status not in ("active", "inactive"):
            raise SandboxError(400, "Status must be active or inactive.",
                               {"status": "Status must be active or inactive."})
        with self.store.lock:
            agreement = self.store.agreements.get(agreement_id)
            if agreement is None:
                raise SandboxError(404, f"Payment agreement {agreement_id} was not found in Dentrix.")
            if status == "active":
                for other in self.store.agreements_for(agreement["guarantor_id"]):
                    if other["status"] == "active" and other["agreement_id"] != agreement_id:
                        raise SandboxError(
                            409,
                            f"Account {agreement['guarantor_id']} already has an active payment agreement "
                            f"(agreement {other['agreement_id']}). Dentrix allows one active agreement per account.",
                        )
            updated = {**agreement, "status": status}
            self.store.put("agreements", updated)
        return _json(updated)

    def sandbox_reset(self, request: Request) -> Response:
        self.store.reset()
        return _json({"ok": True})

    def sandbox_requests(self, request: Request) -> Response:
        with self.store.lock:
            return _json(list(self.store.request_log))

    def sandbox_list_faults(self, request: Request) -> Response:
        with self.store.lock:
            return _json(list(self.store.faults))

    def sandbox_add_fault(self, request: Request) -> Response:
        fault = _read_fault(self._json_body(request))
        with self.store.lock:
            self.store.faults.append(fault)
        return _json(fault, 201)

    def sandbox_clear_faults(self, request: Request) -> Response:
        with self.store.lock:
            self.store.faults.clear()
        return _json({"ok": True})


# --- request readers for the sandbox-only endpoints -----------------------------------------


def _agreement_record(agreement_id: str, request: AgreementRequest) -> dict:
    return {
        "agreement_id": agreement_id,
        "guarantor_id": request.guarantor_id,
        "status": "active",
        **wire.agreement_request_to_json(request),
        "created_at": _now(),
    }


def _read_new_patient(payload: dict) -> tuple[dict, dict[str, str]]:
    """Demographics of a sandbox patient; messages never repeat the values."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for name in ("first_name", "last_name", "phone", "email"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            errors[name] = rules.REQUIRED
        elif len(value) > 100:
            errors[name] = "This field is limited to 100 characters."
        else:
            fields[name] = value.strip()
    if "email" in fields and "@" not in fields["email"]:
        errors["email"] = "Enter an email address."

    try:
        birth_date = wire.parse_date(payload.get("birth_date"))
    except ValueError:
        errors["birth_date"] = rules.REQUIRED if payload.get("birth_date") is None else wire.MSG_BAD_DATE
    else:
        if birth_date > date.today():
            errors["birth_date"] = "Birth date cannot be in the future."
        else:
            fields["birth_date"] = birth_date.isoformat()

    address = payload.get("address")
    if not isinstance(address, dict):
        errors["address"] = "Enter an address with line1, city, state and zip."
    else:
        fields["address"] = {}
        for name in ("line1", "city", "state", "zip"):
            value = address.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[f"address.{name}"] = rules.REQUIRED
            else:
                fields["address"][name] = value.strip()
    return fields, errors


def _read_procedures(payload: Any) -> tuple[list[dict], dict[str, str]]:
    if payload is None:
        return [], {}
    if not isinstance(payload, list):
        return [], {"procedures": "Procedures must be a list of {code, tooth, surface, fee}."}
    procedures: list[dict] = []
    errors: dict[str, str] = {}
    for index, item in enumerate(payload):
        procedure, shape_errors = wire.procedure_request_from_json(item)
        item_errors = {**(rules.validate_procedure(procedure) if procedure else {}), **shape_errors}
        for name, message in item_errors.items():
            errors[f"procedures[{index}].{name}" if name else f"procedures[{index}]"] = message
        if procedure and not item_errors:
            procedures.append(
                {
                    "code": procedure.code,
                    "tooth": procedure.tooth,
                    "surface": procedure.surface,
                    "fee": wire.format_money(procedure.fee),
                }
            )
    return procedures, errors


def _read_fault(payload: dict) -> dict:
    errors: dict[str, str] = {}
    method = str(payload.get("method", "*")).upper()
    if method not in FAULT_METHODS:
        errors["method"] = "Method must be GET, POST, PUT, DELETE or *."
    path_prefix = payload.get("path_prefix", "/v1")
    if not isinstance(path_prefix, str) or not path_prefix.startswith("/v1"):
        errors["path_prefix"] = "Faults apply to connector paths only: the prefix must start with /v1."
    mode = payload.get("mode")
    if mode not in FAULT_MODES:
        errors["mode"] = "Mode must be one of " + ", ".join(FAULT_MODES) + "."
    default_status = 500 if mode == "commit_then_error" else 503
    status = payload.get("status", default_status)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        errors["status"] = "Status must be an HTTP error status, 400 to 599."
    default_latency = 30000 if mode in ("timeout", "hold") else 500
    latency_ms = payload.get("latency_ms", default_latency)
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int) or latency_ms < 0:
        errors["latency_ms"] = "latency_ms must be a whole number of milliseconds, 0 or more."
    retry_after = payload.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0):
        errors["retry_after"] = "retry_after must be a whole number of seconds, 0 or more."
    count = payload.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        errors["count"] = "count must be 1 or more: how many matching requests the fault applies to."
    if errors:
        raise _field_errors(errors, "fault")
    return {
        "method": method,
        "path_prefix": path_prefix,
        "mode": mode,
        "status": status,
        "retry_after": retry_after,
        "latency_ms": latency_ms,
        "count": count,
        "remaining": count,
    }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, mimetype="application/json")


# --- serving --------------------------------------------------------------------------------


class _QuietRequestHandler(WSGIRequestHandler):
    """No per-request access log line: tests read /_sandbox/requests instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningSandbox:
    base_url: str
    app: DentrixSandbox
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.app.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
    state_file: str | None = None,
    host: str = DEFAULT_HOST,
    quiet: bool = True,
) -> RunningSandbox:
    """Start a sandbox on a background thread; port=0 picks a free port."""
    app = DentrixSandbox(api_key=api_key, state_file=str(state_file) if state_file else None)
    server = make_server(
        host, port, app, threaded=True, request_handler=_QuietRequestHandler if quiet else None
    )
    # A short poll interval so stop() returns promptly (shutdown waits for one poll).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="dentrix-sandbox", daemon=True
    )
    thread.start()
    return RunningSandbox(
        base_url=f"http://{host}:{server.server_port}", app=app, server=server, thread=thread
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dentrix connector sandbox (see dentrix_bridge/CONTRACT.md).")
    parser.add_argument("--host", default=os.environ.get("DENTRIX_SANDBOX_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DENTRIX_SANDBOX_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--state-file",
        default=os.environ.get("DENTRIX_SANDBOX_STATE_FILE") or None,
        help="append-only JSON-lines journal, replayed on start (default: memory only)",
    )
    args = parser.parse_args(argv)
    api_key = os.environ.get("DENTRIX_SANDBOX_API_KEY", DEFAULT_API_KEY)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    running = serve_in_thread(args.port, api_key=api_key, state_file=args.state_file, host=args.host, quiet=False)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"Dentrix sandbox listening on {running.base_url}", flush=True)
    # Waiting with a timeout keeps the main thread responsive to signals.
    while not stop_requested.wait(0.5):
        pass
    running.stop()
    print("Dentrix sandbox stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
