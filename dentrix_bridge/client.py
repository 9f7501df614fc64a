"""Chairside's client for a connector (the HTTP contract in CONTRACT.md): one client for
every connector product, Dentrix G-series, Dentrix Enterprise, Dentrix Ascend and Eaglesoft.

Implements `financing.ports.PracticeManagementSystem` on the shared HTTP kit
(`partner_http`), which maps every transport failure and HTTP status onto the port's
errors; the callers' reliability promises depend on that split. What is the connector's
own here: the API key, the wire format (`wire`), the connector's {"error", "fields"} error
body, and that every call but a GET creates something (a payment agreement, a ledger
note, a ledger payment or adjustment), so a lost answer to it is `AmbiguousWriteError`: look the record up by its
reference marker before writing again.

A client writes for one product (`product=`, from the registry entry of the location's
PMS kind): it sends that product's create body (`products.<product>.request_fields`) and
names the product and its record in its messages ("Dentrix Ascend rejected the payment
plan: …"). `describe()` asks the connector what it is, so a location set to the wrong
product is caught by comparing (the console's Test connection).

Error messages are written for a billing clerk and never carry patient data: they hold
ids, HTTP statuses, timeouts and the connector's own error message (which the contract
forbids from holding PHI) and nothing else from a request or response body. Log lines
name the method, the path (ids only), the status and the elapsed milliseconds.

The client does not validate an agreement before sending it: the connector is the
authority, and Chairside calls the product's `validate_agreement` (through the registry)
itself when it builds one.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any, Callable, TypeVar
from urllib.parse import quote

from financing.ports import (
    Agreement,
    AgreementRequest,
    Appointment,
    ConnectorInfo,
    LedgerEntry,
    LedgerEntryKind,
    LedgerEntryRequest,
    LedgerNoteRecord,
    LedgerNoteType,
    NotFoundError,
    Patient,
    PermanentPartnerError,
    TreatmentPlan,
)
from partner_http import Partner, PartnerConnection, unreadable_answer

from . import products, wire

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "chairside-dentrix-client/1"


def _error_detail(body: Any) -> tuple[str, dict[str, str]]:
    """The connector's {"error", "fields"}; the contract keeps PHI out of both."""
    message = body.get("error")
    fields = body.get("fields")
    return (message if isinstance(message, str) else ""), (fields if isinstance(fields, dict) else {})


# One per product: the kit's messages name the product as staff call it.
PARTNERS = {key: Partner(name=module.NAME, error_detail=_error_detail) for key, module in products.PRODUCTS.items()}


class DentrixConnectorClient:
    """One practice's connector, reached over HTTP with an API key, for one product."""

    def __init__(self, base_url: str, api_key: str, *, product: str = products.DEFAULT, **connection: Any):
        """`product`: the connector product the location runs ("dentrix_ascend"; ValueError
        for an unknown one). `connection`: the timeouts, session and pacing of
        `partner_http.PartnerConnection`."""
        self.product = products.product(product)
        self._http = PartnerConnection(PARTNERS[self.product.KEY], base_url, **connection)
        self.base_url = self._http.base_url
        self.api_key = api_key
        record = self.product.RECORD
        self._record, self._records = f"the {record}", f"the {record}s"

    @property
    def before_request(self) -> Callable[[], object] | None:
        return self._http.before_request

    def __repr__(self) -> str:  # never the key
        return f"DentrixConnectorClient({self.base_url!r}, product={self.product.KEY!r})"

    # --- reads --------------------------------------------------------------------------

    def describe(self) -> ConnectorInfo:
        """What the connector says it is (`GET /v1/connector`, contract v2). A connector
        without that endpoint speaks contract v1, which cannot say which product it serves:
        a PermanentPartnerError, since only upgrading it helps."""
        what = "what the connector is"
        try:
            data = self._call("GET", "/v1/connector", what=what)
        except NotFoundError:
            raise PermanentPartnerError(
                f"The {self.product.NAME} connector does not say what it is (contract v1): upgrade it "
                "to contract v2.", status=404,
            ) from None
        return self._parse(what, lambda: wire.connector_info_from_json(data))

    def get_patient(self, patient_id: str) -> Patient:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}", what="the patient")
        return self._parse("the patient", lambda: wire.patient_from_json(data))

    def get_treatment_plans(self, patient_id: str) -> list[TreatmentPlan]:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}/treatment-plans", what="the treatment plans")
        return self._parse("the treatment plans", lambda: [wire.treatment_plan_from_json(p) for p in _array(data)])

    def list_payment_agreements(self, guarantor_id: str) -> list[Agreement]:
        data = self._call("GET", f"/v1/accounts/{_seg(guarantor_id)}/payment-agreements", what=self._records)
        return self._parse(self._records, lambda: [wire.agreement_from_json(a) for a in _array(data)])

    def list_ledger_notes(self, patient_id: str) -> list[LedgerNoteRecord]:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}/ledger-notes", what="the ledger notes")
        return self._parse("the ledger notes", lambda: [wire.ledger_note_from_json(n) for n in _array(data)])

    def list_ledger_entries(self, patient_id: str) -> list[LedgerEntry]:
        """The patient's payments, then adjustments (contract v2.2: `GET .../payments`,
        `GET .../adjustments`), each as the connector lists them, notes included: Chairside
        finds its own by the marker. A connector older than 2.2 answers 404 for both."""
        entries: list[LedgerEntry] = []
        for kind in LedgerEntryKind:
            what = f"the {kind}s"
            data = self._call("GET", f"/v1/patients/{_seg(patient_id)}/{kind}s", what=what)
            entries += self._parse(what, lambda: [wire.ledger_entry_from_json(kind, e) for e in _array(data)])
        return entries

    def appointments_on(self, day: date) -> list[Appointment]:
        """The practice's appointments on `day`, a day of its appointment book (the clinic's
        local date), with their planned fees (`GET /v1/appointments?date=`, contract v2.1).
        A connector without that endpoint (contract 2 or older) answers 404: a
        PermanentPartnerError, since only upgrading it helps."""
        what = "the appointments"
        try:
            data = self._call("GET", "/v1/appointments", what=what, params={"date": wire.format_date(day)})
        except NotFoundError:
            raise PermanentPartnerError(
                f"The {self.product.NAME} connector does not list appointments (contract 2 or older): upgrade it "
                "to contract 2.1.", status=404,
            ) from None
        return self._parse(what, lambda: [wire.appointment_from_json(a) for a in _array(data)])

    # --- writes -------------------------------------------------------------------------

    def create_payment_agreement(self, request: AgreementRequest) -> Agreement:
        """Writes the record in the product's shape. Raises AmbiguousWriteError when the
        record may exist despite the error."""
        data = self._call(
            "POST",
            f"/v1/accounts/{_seg(request.guarantor_id)}/payment-agreements",
            what=self._record,
            body={**wire.agreement_request_to_json(request), **self.product.request_fields(request)},
        )
        return self._parse(self._record, lambda: wire.agreement_from_json(data), write=True)

    def create_ledger_note(self, patient_id: str, type: LedgerNoteType, text: str) -> LedgerNoteRecord:
        """Raises AmbiguousWriteError when the note may exist despite the error."""
        data = self._call(
            "POST",
            f"/v1/patients/{_seg(patient_id)}/ledger-notes",
            what="the ledger note",
            body={"type": str(type), "text": text},
        )
        return self._parse("the ledger note", lambda: wire.ledger_note_from_json(data), write=True)

    def post_ledger_entry(self, request: LedgerEntryRequest) -> LedgerEntry:
        """Post a payment or an adjustment by the practice's type name (contract v2.2).
        Raises AmbiguousWriteError when it may exist despite the error (look it up by the
        marker in its note first), PermanentPartnerError when the connector refuses it (422:
        an unknown or inactive type, named in the message; 400: a field)."""
        kind = LedgerEntryKind(request.kind)
        what = f"the {kind}"
        data = self._call(
            "POST", f"/v1/patients/{_seg(request.patient_id)}/{kind}s", what=what,
            body=wire.ledger_entry_request_to_json(request),
        )
        return self._parse(what, lambda: wire.ledger_entry_from_json(kind, data), write=True)

    # --- the one place that talks HTTP --------------------------------------------------

    def _call(
        self, method: str, path: str, *, what: str, body: dict | None = None, params: dict[str, str] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON of a 2xx or raise a partner error.
        Every method but GET creates something on the connector. `params`: the query
        (never PHI; the log line shows the path without it)."""
        return self._http.call(
            method, path, what=what, is_write=method != "GET", json=body, params=params,
            headers={"X-API-Key": self.api_key, "Accept": "application/json", "User-Agent": USER_AGENT},
        )

    def _parse(self, what: str, build: Callable[[], T], *, write: bool = False) -> T:
        """Turn a 2xx body into dataclasses; a body that does not fit the contract is
        reported without being echoed."""
        try:
            return build()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("dentrix response for %s does not match the contract: %s", what, type(exc).__name__)
            raise unreadable_answer(
                self._http.partner, what=what, is_write=write, status=None, reason="contract mismatch"
            ) from None


def _seg(value: str) -> str:
    """One URL path segment: an id can never add a slash or a query to the path."""
    return quote(str(value), safe="")


def _array(data: Any) -> list:
    if not isinstance(data, list):
        raise TypeError("expected a JSON array")
    return data
