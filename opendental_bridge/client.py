"""Chairside's client for Open Dental's API (https://www.opendental.com/site/apispecification.html).

Implements `financing.ports.PracticeManagementSystem` on the shared HTTP kit
(`partner_http`), like the Dentrix connector's client. What is Open Dental's own here:

- the `Authorization: ODFHIR <DeveloperKey>/<CustomerKey>` header: the developer key is
  Chairside's (settings.OPENDENTAL_DEVELOPER_KEY), the customer key the location's;
- the resources and their JSON (`wire`), pagination (at most 100 items a page: every
  list is read to its end, so a marker on page two is never missed);
- error answers: Open Dental explains a 400 in plain text ("This procedure is already
  linked to a payment plan."), which is what a clerk needs to read; a 401 is a wrong or
  disabled key *or* a key without the permission the call needs (PayPlans to create a
  plan, Comm to create a commlog); 404 a record that is not there; 410 a call Open Dental
  retired (POST /payplans since 23.3.1); 504 a call that ran past its 60 s: after a write,
  the write may have happened, so it is `AmbiguousWriteError` (look up by the marker);
- a 429 (the sandbox's answer to a key over its rate; Open Dental documents the limit, not
  its status) is `RateLimited`: refused before any work, retried after Retry-After;
- a 400 that says the office cannot be reached (its eConnector is not running, or the
  request timed out on the way to it) is transient, not the clerk's to fix.

Rate: Open Dental allows one request per second per customer key (one per 5 s for a key
with Read All only); the Local API and the API Service are not throttled. Chairside's
shared limiter paces every request (partners.pms_for's `before_request`), at the location's
`pms_requests_per_second`.

Error messages are for a billing clerk and carry no patient data: ids, statuses, and
Open Dental's own one-line explanation (bounded), nothing else of a body. Log lines name
the method, the path (ids only; the query goes as params and is not logged), the status
and the time.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timezone
from decimal import Decimal
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from financing.ports import (
    Agreement,
    AgreementRequest,
    AmbiguousWriteError,
    Appointment,
    ConnectorInfo,
    LedgerEntry,
    LedgerEntryKind,
    LedgerEntryRequest,
    LedgerNoteRecord,
    LedgerNoteType,
    NotFoundError,
    PartnerError,
    Patient,
    PermanentPartnerError,
    RateLimited,
    TransientPartnerError,
    TreatmentPlan,
)
from partner_http import LOOK_UP_FIRST, Partner, PartnerConnection, one_line, retry_after_seconds, unreadable_answer

from . import identity, wire

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "chairside-opendental-client/1"
OPEN_DENTAL = Partner(name="Open Dental")
PAGE = 100  # Open Dental's hard limit per list request (the Local API's is 1000)
MAX_PAGES = 100  # 10,000 records of one kind for one patient: stop rather than guess
CAPABILITIES = ("payment_agreements", "ledger_notes", "several_plans_per_account", "procedure_plans")

# The API permission each call needs (https://opendental.com/site/apipermissions.html).
READ_ALL, PAY_PLANS, COMM, PAYMENTS = "Read All", "PayPlans", "Comm", "Payments"
# Where an office names its types (Setup > Definitions), for the clerk's message.
DEFINITION_LIST = {LedgerEntryKind.PAYMENT: "Payment Types", LedgerEntryKind.ADJUSTMENT: "Adj Types"}

ALREADY_LINKED = "already linked to a payment plan"
ADVICE = {
    ALREADY_LINKED: (
        "Find the plan the procedure is on in the patient's Account module, take the procedure off it "
        "(or close that plan) in Open Dental, then resume this case"
    ),
}


class OpenDentalClient:
    """One Open Dental office (database), reached with Chairside's developer key and the
    office's customer key."""

    def __init__(self, base_url: str, api_key: str, *, developer_key: str | None = None,
                 time_zone: str | None = None, **connection: Any):
        """`api_key`: the office's customer key. `time_zone`: the office's IANA zone, in which
        Open Dental keeps appointment times (it stores no zone); without it the schedule
        cannot be read (ValueError for an unknown zone). `connection`: the timeouts,
        session and pacing of `partner_http.PartnerConnection`."""
        self._http = PartnerConnection(OPEN_DENTAL, base_url, **connection)
        self.base_url = self._http.base_url
        self.customer_key = api_key
        self._developer_key = developer_key
        # The office's payment and adjustment types (definitions), per category: read once,
        # and again only when a name is not among them (a type added since).
        self._definitions: dict[int, list[tuple[str, str, bool]]] = {}
        try:
            self.time_zone = ZoneInfo(time_zone) if time_zone else None
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {time_zone!r}: use an IANA name such as America/Boise") from None

    @property
    def before_request(self) -> Callable[[], object] | None:
        return self._http.before_request

    def __repr__(self) -> str:  # never a key
        return f"OpenDentalClient({self.base_url!r})"

    # --- reads --------------------------------------------------------------------------

    def get_patient(self, patient_id: str) -> Patient:
        data = self._call("GET", f"/patients/{_num(patient_id, 'the patient')}", what="the patient")
        return self._parse("the patient", lambda: wire.patient_from_json(data))

    def get_treatment_plans(self, patient_id: str) -> list[TreatmentPlan]:
        """The patient's treatment plans: the Active one with its procedures (through its
        TreatPlanAttaches), the others without (nothing is financed from them)."""
        pat_num = _num(patient_id, "the patient")
        plans = self._list("/treatplans", {"PatNum": pat_num}, what="the treatment plans")
        attached: dict[str, list[str]] = {}
        for plan in plans:
            if isinstance(plan, dict) and plan.get("TPStatus") == "Active":
                plan_num = self._parse("the treatment plans", lambda: wire.parse_id(plan["TreatPlanNum"]))
                rows = self._list("/treatplanattaches", {"TreatPlanNum": plan_num}, what="the treatment plan's procedures")
                attached[plan_num] = self._parse(
                    "the treatment plan's procedures", lambda: [wire.parse_id(r["ProcNum"]) for r in rows]
                )
        procedures = {}
        if any(attached.values()):
            logs = self._list("/procedurelogs", {"PatNum": pat_num}, what="the procedures")
            procedures = self._parse(
                "the procedures", lambda: {p.procedure_id: p for p in (wire.procedure_from_json(r) for r in logs)}
            )

        def build():
            result = []
            for plan in plans:
                plan_num = wire.parse_id(plan["TreatPlanNum"])
                # A procedure deleted since it was attached is no longer in the plan.
                procs = [procedures[n] for n in attached.get(plan_num, ()) if n in procedures]
                result.append(wire.treatment_plan_from_json(plan, procs))
            return result

        return self._parse("the treatment plans", build)

    def list_payment_agreements(self, guarantor_id: str) -> list[Agreement]:
        """The guarantor's payment plans (Dynamic and old Patient plans, open and closed;
        insurance payment plans are not an account's arrangements)."""
        rows = self._list("/payplans", {"Guarantor": _num(guarantor_id, "the account")}, what="the payment plans")
        return self._parse(
            "the payment plans", lambda: [wire.agreement_from_json(r) for r in rows if wire.is_patient_plan(r)]
        )

    def list_ledger_notes(self, patient_id: str) -> list[LedgerNoteRecord]:
        rows = self._list("/commlogs", {"PatNum": _num(patient_id, "the patient")}, what="the commlogs")
        return self._parse("the commlogs", lambda: [wire.ledger_note_from_json(r) for r in rows])

    def list_ledger_entries(self, patient_id: str) -> list[LedgerEntry]:
        """The patient's payments, then adjustments (`GET /payments?PatNum=`, `GET
        /adjustments?PatNum=`, every page), with their notes: Chairside finds its own by
        the marker in PayNote / AdjNote."""
        pat_num = _num(patient_id, "the patient")
        entries: list[LedgerEntry] = []
        for kind in LedgerEntryKind:
            what = f"the {kind}s"
            rows = self._list(f"/{kind}s", {"PatNum": pat_num}, what=what)
            entries += self._parse(what, lambda: [wire.ledger_entry_from_json(kind, r) for r in rows])
        return entries

    def appointments_on(self, day: date) -> list[Appointment]:
        """The office's Scheduled appointments on `day` (its local day), with the fees of the
        treatment-planned procedures on each. Open Dental's calls, as documented
        (https://www.opendental.com/site/apiappointments.html, apiprocedurelogs.html):

        - `GET /appointments?date=&AptStatus=Scheduled`, every page; rows that are not
          Scheduled or not on `day` are dropped too (an Open Dental before 22.4.28 ignores
          AptStatus);
        - per appointment, `GET /procedurelogs?AptNum=` (22.3.32+): the procedures on it
          (ProcedureLog.AptNum), of which the treatment-planned ones (TP) are its planned fees;
        - per patient, `GET /patients/{PatNum}` for the Guarantor (an appointment names only
          the patient; the rest of the record is not kept), and, when TP procedures are on the
          visit, `GET /treatplans?PatNum=` for the Active plan (which holds every TP procedure).

        AptDateTime is the office's wall-clock time: `starts_at` is it in the office's zone
        (`time_zone`), as UTC. About three requests a visit, paced like every other."""
        what = "the appointments"
        if self.time_zone is None:
            raise PermanentPartnerError(
                "Open Dental keeps appointment times without a time zone: Chairside needs the office's time zone "
                "to read the schedule; give this location's Open Dental connection its time zone"
            )
        rows = self._list("/appointments", {"date": wire.format_date(day), "AptStatus": "Scheduled"}, what=what)
        visits = [
            visit for visit in self._parse(what, lambda: [wire.appointment_row(r) for r in rows])
            if visit.status == "Scheduled" and visit.starts.date() == day
        ]
        guarantors: dict[str, str] = {}
        active_plans: dict[str, str] = {}
        appointments = []
        for visit in visits:
            procedures = self._list("/procedurelogs", {"AptNum": visit.apt_num}, what="the appointment's procedures")
            fees = [fee for fee in self._parse(
                "the appointment's procedures", lambda: [wire.planned_fee(r, visit.apt_num) for r in procedures]
            ) if fee is not None]
            if visit.pat_num not in guarantors:
                patient = self._call("GET", f"/patients/{visit.pat_num}", what="the patient")
                guarantors[visit.pat_num] = self._parse("the patient", lambda: wire.parse_id(patient["Guarantor"]))
            if fees and visit.pat_num not in active_plans:
                active_plans[visit.pat_num] = self._active_plan(visit.pat_num)
            appointments.append(Appointment(
                appointment_id=visit.apt_num,
                patient_id=visit.pat_num,
                guarantor_id=guarantors[visit.pat_num],
                starts_at=visit.starts.replace(tzinfo=self.time_zone).astimezone(timezone.utc),
                clinic_id=visit.clinic_id,
                treatment_plan_id=active_plans[visit.pat_num] if fees else "",
                planned_fees=sum(fees, Decimal("0.00")),
            ))
        return sorted(appointments, key=lambda a: (a.starts_at, int(a.appointment_id)))

    def _active_plan(self, pat_num: str) -> str:
        """The patient's Active treatment plan ("" if none): the one holding every
        treatment-planned procedure, so the one a visit's planned work is on."""
        plans = self._list("/treatplans", {"PatNum": pat_num}, what="the treatment plans")
        return self._parse("the treatment plans", lambda: next(
            (wire.parse_id(p["TreatPlanNum"]) for p in plans if p["TPStatus"] == "Active"), ""
        ))

    def describe(self) -> ConnectorInfo:
        """What the connection reaches. Open Dental has no call naming its database: the
        version comes from the ProgramVersion preference (which also proves the keys work),
        and the database is named by the customer key's id (`identity`), never the key."""
        rows = self._call("GET", "/preferences", what="Open Dental's version", params={"PrefName": "ProgramVersion"})

        def version():
            return next((str(r["ValueString"]) for r in _array(rows) if r.get("PrefName") == "ProgramVersion"), "")

        return ConnectorInfo(
            product=wire.PRODUCT,
            version=self._parse("Open Dental's version", version),
            database_id=identity.key_id(self.customer_key),
            capabilities=CAPABILITIES,
        )

    # --- writes -------------------------------------------------------------------------

    def create_payment_agreement(self, request: AgreementRequest) -> Agreement:
        """POST /payplans/Dynamic. Raises AmbiguousWriteError when the plan may exist
        despite the error. Never a PUT: a PUT overwrites the Note, and the marker with it."""
        data = self._call(
            "POST", "/payplans/Dynamic", what="the payment plan", body=wire.payplan_request(request), permission=PAY_PLANS
        )
        return self._parse("the payment plan", lambda: wire.agreement_from_json(data), write=True)

    def create_ledger_note(self, patient_id: str, type: LedgerNoteType, text: str) -> LedgerNoteRecord:
        """POST /commlogs. Raises AmbiguousWriteError when the commlog may exist despite the error."""
        data = self._call(
            "POST", "/commlogs", what="the commlog", body=wire.commlog_request(_num(patient_id, "the patient"), text),
            permission=COMM,
        )
        if isinstance(data, dict) and "CommlogNum" in data:
            return self._parse("the commlog", lambda: wire.ledger_note_from_json(data), write=True)
        # Before 23.3.7 Open Dental answered a created commlog without it: find it.
        made = [n for n in self.list_ledger_notes(patient_id) if n.text == text]
        if len(made) != 1:
            raise AmbiguousWriteError(f"Open Dental created the commlog without returning it; the commlog {LOOK_UP_FIRST}")
        return made[0]

    def post_ledger_entry(self, request: LedgerEntryRequest) -> LedgerEntry:
        """POST /payments or POST /adjustments, the type named by the office's own name
        (resolved to its DefNum through `GET /definitions`). Raises AmbiguousWriteError
        when the entry may exist despite the error (look it up by the marker in its note),
        PermanentPartnerError when the office has no such type (or has hidden it) or Open
        Dental refuses the entry."""
        kind = LedgerEntryKind(request.kind)
        _num(request.patient_id, "the patient")
        def_num = self._type_num(kind, request.type_name)
        what = f"the {kind}"
        data = self._call("POST", f"/{kind}s", what=what, body=wire.ledger_entry_request(request, def_num),
                          permission=PAYMENTS)
        return self._parse(what, lambda: wire.ledger_entry_from_json(kind, data), write=True)

    def _type_num(self, kind: LedgerEntryKind, name: str) -> str:
        """The DefNum of the office's visible type called exactly `name`."""
        category = wire.DEFINITION_CATEGORY[kind]
        for fresh in (False, True):
            if fresh or category not in self._definitions:
                rows = self._list("/definitions", {"Category": category, "includeHidden": "true"},
                                  what=f"the {kind} types")
                self._definitions[category] = self._parse(f"the {kind} types", lambda: [wire.definition_row(r) for r in rows])
            named = [(num, hidden) for num, item, hidden in self._definitions[category] if item == name]
            visible = [num for num, hidden in named if not hidden]
            if visible:
                return visible[0]
        where = f"Setup > Definitions > {DEFINITION_LIST[kind]}"
        if named:
            raise PermanentPartnerError(
                f'The Open Dental {kind} type "{name}" is hidden: show it again in {where}, or choose another '
                f"for this location"
            )
        raise PermanentPartnerError(
            f'Open Dental has no {kind} type "{name}": add it in {where}, or choose another for this location'
        )

    # --- the one place that talks HTTP --------------------------------------------------

    def _headers(self, body: bool) -> dict[str, str]:
        developer_key = self._developer_key if self._developer_key is not None else settings.OPENDENTAL_DEVELOPER_KEY
        headers = {
            "Authorization": f"ODFHIR {developer_key}/{self.customer_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    def _call(self, method: str, path: str, *, what: str, body: dict | None = None,
              params: dict | None = None, permission: str = READ_ALL) -> Any:
        """One request; the decoded JSON of a 2xx, or the port's error. Every method but
        GET creates something."""
        is_write = method != "GET"
        args: dict[str, Any] = {"headers": self._headers(body is not None)}
        if body is not None:
            args["data"] = wire.dumps(body)
        if params:
            args["params"] = params
        response = self._http.send(method, path, what=what, is_write=is_write, **args)
        if response.status_code == 429:
            # Open Dental's throttle refused the request before doing anything (one request
            # a second per customer key): like our own limiter holding it back, nothing
            # happened, so it is `RateLimited` — the step comes back after Retry-After
            # without spending an attempt, and an unsent note stays unsent. Several
            # processes pacing one key without a shared limiter (the embedded broker) meet it.
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimited(
                f"Open Dental is limiting this customer key's requests (HTTP 429): nothing was done"
                + (f"; it asked us to retry in {wait:g} s" if wait is not None else ""),
                status=429, retry_after=wait if wait is not None else 1.0,
            )
        if response.status_code in (400, 401, 403, 404, 410):
            raise refusal(response.status_code, explanation(response.content), what=what, is_write=is_write,
                          permission=permission)
        self._http.raise_for_status(response, what=what, is_write=is_write)  # 429, 5xx (504), 3xx
        if is_write and not response.content.strip():
            return None  # a created record Open Dental did not send back (commlogs before 23.3.7)
        return self._http.json(response, what=what, is_write=is_write)

    def _list(self, path: str, params: dict, *, what: str) -> list:
        """Every item of a list, page after page (Offset), until a page is not full."""
        items: list = []
        for _ in range(MAX_PAGES):
            page = self._call("GET", path, what=what, params={**params, **({"Offset": len(items)} if items else {})})
            if not isinstance(page, list):
                raise unreadable_answer(OPEN_DENTAL, what=what, is_write=False, status=None, reason="not a list")
            items.extend(page)
            if len(page) < PAGE:
                return items
        raise PermanentPartnerError(
            f"Open Dental lists more than {MAX_PAGES * PAGE} of {what}; Chairside stopped reading them"
        )

    def _parse(self, what: str, build: Callable[[], T], *, write: bool = False) -> T:
        try:
            return build()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("open dental response for %s does not match its documentation: %s", what, type(exc).__name__)
            raise unreadable_answer(OPEN_DENTAL, what=what, is_write=write, status=None, reason="unexpected fields") from None


def explanation(content: bytes) -> str:
    """Open Dental's explanation of an error, as one bounded line: the body's text (a JSON
    string is unquoted; a JSON object's message taken); "" for an HTML page or nothing."""
    try:
        text = content.decode("utf-8-sig", errors="replace").strip()
    except AttributeError:
        return ""
    if not text or text.lstrip().startswith("<"):
        return ""
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = text
    if isinstance(decoded, dict):
        decoded = next((decoded[k] for k in ("message", "Message", "error") if isinstance(decoded.get(k), str)), "")
    return one_line(decoded) if isinstance(decoded, str) else ""


def refusal(status: int, text: str, *, what: str, is_write: bool, permission: str) -> PartnerError:
    """The port's error for Open Dental's 400 / 401 / 403 / 404 / 410, in words a clerk can act on."""
    said = f": {text.rstrip('.')}" if text else ""
    lowered = text.lower()
    if status == 400 and "econnector" in lowered:
        # Nothing reached the office: worth retrying, not the clerk's to fix.
        return TransientPartnerError(f"Open Dental cannot reach the office's database (HTTP 400{said})", status=status)
    if status == 400 and ("timed out" in lowered or "timeout" in lowered):
        problem = f"Open Dental's request to the office timed out (HTTP 400{said})"
        if is_write:
            return AmbiguousWriteError(f"{problem}; {what} {LOOK_UP_FIRST}", status=status)
        return TransientPartnerError(problem, status=status)
    if status in (401, 403):
        return PermanentPartnerError(
            f"Open Dental refused {what} (HTTP {status}{said}): this location's customer key needs the "
            f"{permission} permission in Open Dental's API setup, or the developer or customer key is wrong "
            f"or disabled; check this location's Open Dental connection",
            status=status,
        )
    if status == 404:
        return NotFoundError(f"Open Dental could not find {what} (HTTP 404{said})", status=status)
    if status == 410:
        return PermanentPartnerError(
            f"Open Dental no longer offers the call Chairside made for {what} (HTTP 410 Gone{said}); "
            "Chairside needs an update",
            status=status,
        )
    advice = next((a for phrase, a in ADVICE.items() if phrase in lowered), "")
    return PermanentPartnerError(
        f"Open Dental rejected {what}{said or f' (HTTP {status})'}" + (f". {advice}." if advice else ""),
        status=status,
    )


def _num(value: str, what: str) -> str:
    """An id for a URL: Open Dental's ids are whole numbers; anything else names no record
    (a 404 without asking, so junk never reaches a path or costs a request)."""
    text = str(value).strip()
    if not text.isdigit():  # never echoed: a mistyped id may be a name
        raise NotFoundError(f"Open Dental could not find {what}: Open Dental's ids are whole numbers")
    return str(int(text))


def _array(data: Any) -> list:
    if not isinstance(data, list):
        raise TypeError("expected a JSON array")
    return data
