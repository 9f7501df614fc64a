"""What `financing` needs from a lender and from a practice management system.

The bridges (`carecredit_bridge`, `dentrix_bridge`, `opendental_bridge`, later a second lender)
implement these interfaces and translate their wire formats into the dataclasses below.
`financing` never imports `requests` and never sees a partner's JSON.

Errors are classified at the boundary:

- `TransientPartnerError`: worth retrying later (timeout, connection refused, 5xx, 429).
- `AmbiguousWriteError`: a *write* whose outcome is unknown (timeout or dropped connection
  or 5xx after the request was sent). The caller must look up before writing again.
- `PermanentPartnerError`: retrying will not help (validation, auth, a rule of the partner).
  Its message is written for a billing clerk and carries no PHI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol


# --- errors ------------------------------------------------------------------------------


class PartnerError(Exception):
    """A partner call failed. `str(error)` is safe to show and store: it never holds PHI."""

    permanent = False

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class TransientPartnerError(PartnerError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class AmbiguousWriteError(TransientPartnerError):
    """The write may or may not have been committed by the partner."""


class RateLimited(TransientPartnerError):
    """Chairside's own limiter held the request back: nothing was sent to the partner.

    Not a failure of the partner or of the case: the step is re-scheduled for when the
    connection has room (`retry_after`), without spending one of its attempts.
    """


class PermanentPartnerError(PartnerError):
    permanent = True

    def __init__(self, message: str, *, status: int | None = None, fields: dict[str, str] | None = None):
        super().__init__(message, status=status)
        self.fields = fields or {}


class NotFoundError(PermanentPartnerError):
    pass


# --- practice management system -----------------------------------------------------------


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    state: str
    zip: str


@dataclass(frozen=True)
class Patient:
    patient_id: str
    guarantor_id: str
    first_name: str
    last_name: str
    birth_date: date
    phone: str
    email: str
    address: Address
    # The clinic of a multi-clinic practice database the patient belongs to (Dentrix
    # Enterprise's clinic, Open Dental's ClinicNum), as a string; "" when the database has
    # no clinics or the patient is assigned to none. A Location serves only its own
    # clinics' patients (Location.clinic_ids).
    clinic_id: str


@dataclass(frozen=True)
class Procedure:
    code: str  # CDT / ADA code, e.g. "D2740"
    tooth: str  # "" when the procedure has no tooth
    surface: str  # "" when the procedure has no surface
    fee: Decimal
    # The PMS's own id of the procedure (a connector's procedure_id, Open Dental's ProcNum):
    # products that build a plan over procedures (Dentrix Ascend, Open Dental) link them by it.
    procedure_id: str = ""
    # Completed and posted to the ledger, so it carries a balance: Dentrix Ascend and
    # Eaglesoft write a plan only over posted production (the case waits until then).
    posted: bool = False
    balance: Decimal = Decimal("0.00")  # what is still owed on it on the ledger; 0 until posted


@dataclass(frozen=True)
class TreatmentPlan:
    plan_id: str
    patient_id: str
    status: str  # lower case: created | proposed | accepted | rejected | completed
    procedures: tuple[Procedure, ...]

    @property
    def total(self) -> Decimal:
        return sum((p.fee for p in self.procedures), Decimal("0.00"))


class Interval(enum.StrEnum):
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    SEMIMONTHLY = "semimonthly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"  # Dentrix Ascend, Open Dental


@dataclass(frozen=True)
class AppliedProcedure:
    """A procedure a plan is built over, and the amount of it the plan carries."""

    procedure_id: str
    amount: Decimal


@dataclass(frozen=True)
class AgreementRequest:
    guarantor_id: str
    agreement_date: date
    interval: Interval
    total_agreed_amount: Decimal
    down_payment: Decimal
    payment_amount: Decimal
    number_of_payments: int
    first_payment_due: date
    annual_finance_charge_pct: Decimal
    note: str  # carries the case's reference marker
    # What some products need beyond the account's terms; a product that has no use for
    # one ignores it (and its rules say so when it is missing where it is needed).
    patient_id: str = ""  # the patient whose treatment it finances (a plan's patient in Enterprise)
    treatment_plan_id: str = ""
    procedures: tuple[AppliedProcedure, ...] = ()  # Ascend, Open Dental: the plan is built over these
    name: str = ""  # Dentrix Enterprise names its plans


@dataclass(frozen=True)
class Agreement:
    agreement_id: str
    guarantor_id: str
    status: str  # active | inactive
    agreement_date: date
    interval: Interval
    total_agreed_amount: Decimal
    down_payment: Decimal
    payment_amount: Decimal
    number_of_payments: int
    first_payment_due: date
    annual_finance_charge_pct: Decimal
    note: str
    product: str = ""  # the product's own kind of record: see ConnectorInfo.product
    name: str = ""
    patient_ids: tuple[str, ...] = ()  # the patients a plan covers, where the product says
    procedures: tuple[AppliedProcedure, ...] = ()
    # A product that versions plans (Dentrix Enterprise) inactivates a plan whose terms
    # change and makes a new one: the ids of the versions before and after this one.
    supersedes: str = ""
    superseded_by: str = ""
    # Dentrix Ascend dates a plan from its start, one interval before the first payment.
    start_date: date | None = None
    # Eaglesoft's contract amount: the total less the down payment, computed by Eaglesoft.
    contract_amount: Decimal | None = None


@dataclass(frozen=True)
class ConnectorInfo:
    """What a practice's PMS connection says it is (`GET /v1/connector`, or Open Dental's
    own answer): a location's PMS product is checked against it."""

    product: str  # dentrix_g | dentrix_enterprise | dentrix_ascend | eaglesoft | opendental
    version: str
    database_id: str  # the practice database it serves, as the product names it ("" if unknown)
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Appointment:
    """A booked visit on a practice's schedule, with the planned treatment on it: what the
    nightly pre-screen reads for the next business day."""

    appointment_id: str
    patient_id: str
    guarantor_id: str
    starts_at: datetime  # aware (UTC); shown in the location's zone
    clinic_id: str  # "" when the database has no clinics
    treatment_plan_id: str  # the plan whose planned procedures are on it ("" if none)
    planned_fees: Decimal  # the estimated fees of the planned procedures on it


class LedgerEntryKind(enum.StrEnum):
    """The two kinds of ledger transaction Chairside posts (besides notes): a payment of the
    practice's payment type, and an adjustment of one of its adjustment types."""

    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class LedgerEntryRequest:
    """A payment or an adjustment to post on a patient's ledger.

    Amounts are as the ledger shows them:

    - a payment's `amount` is what was paid, positive; it lowers the balance by that much;
    - an adjustment's `amount` is signed: negative credits the account (lowers the balance:
      the CareCredit merchant fee, written off the practice's income), positive charges it
      (raises the balance: a CareCredit refund, money given back to the lender).

    `type_name` is the practice's own payment or adjustment type, as its staff named it in
    the PMS ("CareCredit Payment", "CareCredit Merchant Fee", "CareCredit Refund"); a PMS
    without such a type refuses the entry (PermanentPartnerError naming the type).
    `note` carries the posting's marker: the entry is found by it before any retry.
    """

    kind: LedgerEntryKind
    patient_id: str
    guarantor_id: str
    entry_date: date  # the practice's local day
    amount: Decimal
    type_name: str
    note: str


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    kind: LedgerEntryKind
    patient_id: str
    entry_date: date
    amount: Decimal  # signed as in LedgerEntryRequest
    type_name: str
    note: str


class LedgerNoteType(enum.StrEnum):
    ACCOUNT = "account"
    BILLING_STATEMENT = "billing_statement"  # Dentrix caps these at 82 characters


@dataclass(frozen=True)
class LedgerNoteRecord:
    note_id: str
    patient_id: str
    type: LedgerNoteType
    text: str


class PracticeManagementSystem(Protocol):
    """One practice's PMS, reached through its connector."""

    def get_patient(self, patient_id: str) -> Patient: ...

    def get_treatment_plans(self, patient_id: str) -> list[TreatmentPlan]: ...

    def list_payment_agreements(self, guarantor_id: str) -> list[Agreement]: ...

    def create_payment_agreement(self, request: AgreementRequest) -> Agreement:
        """Raises AmbiguousWriteError when the agreement may exist despite the error."""

    def describe(self) -> ConnectorInfo:
        """What the connection reaches: product, version, database (the Test connection button)."""

    def list_ledger_notes(self, patient_id: str) -> list[LedgerNoteRecord]: ...

    def appointments_on(self, day: date) -> list[Appointment]:
        """The practice's appointments on `day` (its local day), with their planned fees."""

    def create_ledger_note(self, patient_id: str, type: LedgerNoteType, text: str) -> LedgerNoteRecord:
        """Raises AmbiguousWriteError when the note may exist despite the error."""

    def list_ledger_entries(self, patient_id: str) -> list[LedgerEntry]:
        """The payments and adjustments on the patient's ledger (Chairside finds its own by
        the marker in their notes)."""

    def post_ledger_entry(self, request: LedgerEntryRequest) -> LedgerEntry:
        """Post a payment or an adjustment. Raises AmbiguousWriteError when it may exist
        despite the error, PermanentPartnerError when the PMS refuses it (an unknown type,
        an amount it does not take)."""


# --- lender -------------------------------------------------------------------------------


class DecisionStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"  # link sent, the patient has not finished the application
    PENDING = "pending"  # submitted, the lender is still deciding
    REFERRED = "referred"  # the lender wants a call before it decides
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # a raw status we do not recognise: it never moves a case


class PromotionKind(enum.StrEnum):
    DEFERRED = "deferred"  # deferred interest, 0% during the promotion
    REDUCED_APR = "reduced_apr"  # reduced APR with fixed monthly payments


@dataclass(frozen=True)
class Offer:
    code: str  # normalised: "deferred_12", "reduced_apr_36", ...
    kind: PromotionKind
    months: int
    apr: Decimal  # annual percentage, e.g. Decimal("17.90"); 0 for deferred interest
    min_amount: Decimal


@dataclass(frozen=True)
class Applicant:
    first_name: str
    last_name: str
    birth_date: date
    phone: str
    email: str
    address: Address


@dataclass(frozen=True)
class ApplicationRequest:
    merchant_number: str
    reference: str  # the case reference, echoed back by the lender
    requested_amount: Decimal
    applicant: Applicant
    callback_url: str  # where the lender sends its (thin, signed) webhooks


@dataclass(frozen=True)
class Application:
    application_id: str
    apply_url: str  # the hosted page where the patient enters SSN and income


@dataclass(frozen=True)
class LenderDecision:
    application_id: str
    status: DecisionStatus
    raw_status: str
    requested_amount: Decimal
    approved_amount: Decimal | None = None
    credit_limit: Decimal | None = None
    offers: tuple[Offer, ...] = field(default_factory=tuple)
    decided_at: datetime | None = None
    # The last day an approval can be charged (the lender's date): past it, a purchase is
    # refused and the approval lapses unused. None when the lender gives no date.
    expires_on: date | None = None


@dataclass(frozen=True)
class DecisionPage:
    """One page of "applications whose status changed since" for a merchant."""

    decisions: tuple[LenderDecision, ...]
    next_cursor: str | None  # None on the last page
    as_of: datetime  # the lender's clock when the listing started: the next poll's watermark


# --- lender: pre-screening tomorrow's patients, and existing cardholders --------------------


class PrescreenOutcome(enum.StrEnum):
    PREQUALIFIED = "prequalified"  # pre-qualified up to `amount`, until `expires_on`
    EXISTING_CARDHOLDER = "existing_cardholder"  # already holds the card: `amount` is its available credit
    NOT_PREQUALIFIED = "not_prequalified"  # the soft check said no: the patient may still apply
    # Nothing to go on: no match for the name and address, a minor, an entry the lender
    # could not read, or a raw status we do not recognise (never read as a "yes").
    NO_RESULT = "no_result"


@dataclass(frozen=True)
class PrescreenApplicant:
    """One person to pre-screen, and the estimated fee to screen for.

    Demographics only, in flight only: a soft check by name, birth date and address (never
    an SSN, never income). A minor is screened through the guarantor: send the guarantor's
    demographics (lenders do not screen under-18s; CareCredit reports them as no result).
    """

    reference: str  # chosen by the caller, unique in its request, echoed back; must carry no PHI
    first_name: str
    last_name: str
    birth_date: date
    address: Address
    requested_amount: Decimal  # the estimated fee of the appointment


@dataclass(frozen=True)
class PrescreenRequest:
    merchant_number: str
    applicants: tuple[PrescreenApplicant, ...]  # at most the lender's `max_prescreen_batch`


@dataclass(frozen=True)
class PrescreenResult:
    reference: str
    outcome: PrescreenOutcome
    # PREQUALIFIED: the amount pre-qualified up to; EXISTING_CARDHOLDER: the available
    # credit; None for the other outcomes.
    amount: Decimal | None
    expires_on: date | None  # when a pre-qualification lapses (the lender's date); None otherwise
    raw_status: str  # the lender's own status, kept beside the outcome


@dataclass(frozen=True)
class CardholderRequest:
    """Confirm that an existing cardholder's account takes a case's amount.

    Found by the holder's identity (the same demographics as a pre-screen, no SSN, no
    account number). `reference` is the case's: the lender keeps one confirmation per
    reference, so sending the same request again returns the first answer.
    """

    merchant_number: str
    reference: str
    requested_amount: Decimal
    first_name: str
    last_name: str
    birth_date: date
    address: Address


@dataclass(frozen=True)
class CardholderConfirmation:
    """The lender's decision on a cardholder's purchase, in place of an application's.

    `decision.application_id` is the confirmation's id. APPROVED: the account takes the
    amount (`approved_amount`), `credit_limit` is its available credit and `offers` the
    promotions the amount qualifies for. DECLINED: the account cannot take the amount
    (`raw_status` says why, e.g. INSUFFICIENT_CREDIT); the patient is not declined and may
    still apply. The account is named by its last four digits and the lender's token,
    never by its full number.
    """

    decision: LenderDecision
    account_last4: str
    account_token: str


# --- lender: the purchase, and the money that follows ---------------------------------------


class TransactionKind(enum.StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"


class TransactionStatus(enum.StrEnum):
    SETTLED = "settled"  # a purchase charged (funded to the practice, less the fee); a refund made
    VOIDED = "voided"  # a purchase cancelled on its own business day: never funded, on no report
    DECLINED = "declined"  # refused (over the approval, approval expired, account closed): nothing charged


class DeclineCode(enum.StrEnum):
    """Why a lender declined a purchase, as a code the flow acts on (the reason's words are
    for people)."""

    NOT_APPROVED = "not_approved"  # the application is not (or no longer) approved
    APPROVAL_EXPIRED = "approval_expired"  # past the approval's last day: the case lapses
    OVER_APPROVED_AMOUNT = "over_approved_amount"  # more than is left on the approval
    OTHER = "other"  # a code we do not know: a person reads the reason


@dataclass(frozen=True)
class PurchaseRequest:
    """Charge an approved account for a case's treatment: authorise and settle in one call
    (Synchrony's AUTH_SETTLE).

    `idempotency_key` is the purchase's own, chosen by the caller: the lender keeps one
    transaction per key, so sending the same request again returns the first transaction
    and never charges twice. `application_id` is the approved application (or the
    cardholder confirmation) the purchase draws on.
    """

    merchant_number: str
    application_id: str
    reference: str  # the case's reference, echoed on the settlement report
    idempotency_key: str
    amount: Decimal
    promotion: str  # normalised promotion code, e.g. "deferred_12"


@dataclass(frozen=True)
class RefundRequest:
    """Give back all or part of a settled purchase. One transaction per idempotency key."""

    merchant_number: str
    purchase_id: str
    idempotency_key: str
    amount: Decimal


@dataclass(frozen=True)
class LenderTransaction:
    transaction_id: str
    kind: TransactionKind
    status: TransactionStatus
    amount: Decimal
    reference: str
    idempotency_key: str
    promotion: str
    authorization_code: str  # "" for a refund or a declined purchase
    created_at: datetime  # aware
    business_day: date  # the lender's settlement day it belongs to
    purchase_id: str = ""  # a refund: the purchase it returns money from
    decline_reason: str = ""  # a DECLINED purchase: the lender's reason, in plain words, no PHI
    decline_code: DeclineCode | None = None  # a DECLINED purchase: why, as a code


@dataclass(frozen=True)
class SettlementLine:
    """One transaction on a merchant's daily settlement report."""

    transaction_id: str
    kind: TransactionKind
    reference: str
    amount: Decimal  # positive for purchases and refunds alike
    fee: Decimal  # the merchant fee kept on a purchase; 0 on a refund (fees are not returned)
    net: Decimal  # funded to the practice: amount − fee for a purchase, −amount for a refund
    promotion: str
    purchase_id: str = ""  # a refund: the purchase it belongs to


@dataclass(frozen=True)
class SettlementReport:
    merchant_number: str
    day: date
    lines: tuple[SettlementLine, ...]

    @property
    def purchases(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.kind == TransactionKind.PURCHASE), Decimal("0.00"))

    @property
    def refunds(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.kind == TransactionKind.REFUND), Decimal("0.00"))

    @property
    def fees(self) -> Decimal:
        return sum((line.fee for line in self.lines), Decimal("0.00"))

    @property
    def net(self) -> Decimal:
        return sum((line.net for line in self.lines), Decimal("0.00"))


class Lender(Protocol):
    """One lender account (merchant) of a practice."""

    def create_application(self, request: ApplicationRequest) -> Application: ...

    def get_decision(self, application_id: str) -> LenderDecision: ...

    def list_promotions(self, merchant_number: str, amount: Decimal) -> list[Offer]: ...

    def list_changed_decisions(
        self, merchant_number: str, since: datetime | None, cursor: str | None = None
    ) -> DecisionPage:
        """Applications of the merchant whose status changed at or after `since`, oldest
        change first, a page at a time (pass `next_cursor` back for the next page).

        Lets the poller ask once per merchant instead of once per waiting case. A lender
        without such an endpoint raises NotImplementedError and is polled case by case.
        """

    # How many applicants one `prescreen` call takes (split a longer list); 0 for a lender
    # without a batch pre-screen, whose `prescreen` raises NotImplementedError (as does
    # `confirm_cardholder` for a lender that cannot confirm a cardholder).
    max_prescreen_batch: int

    def prescreen(self, request: PrescreenRequest) -> list[PrescreenResult]:
        """A soft check of a batch of applicants, one result per applicant, in the order
        sent. Read-only: it creates nothing at the lender and changes nothing on the
        applicants' credit, so a timeout, a dropped connection or a 5xx is transient (send
        the batch again), never ambiguous.
        """

    def confirm_cardholder(self, request: CardholderRequest) -> CardholderConfirmation:
        """The lender's decision for an existing cardholder and the case's amount.

        Raises NotFoundError when the lender finds no account for the identity (the case
        goes through an application instead), AmbiguousWriteError when the answer was
        lost (send the same request again: the reference returns the same confirmation).
        """

    def purchase(self, request: PurchaseRequest) -> LenderTransaction:
        """Authorise and settle. A DECLINED transaction is returned, not raised (its reason
        is the lender's); AmbiguousWriteError when the answer was lost (look it up by the
        idempotency key before sending it again, or send the same key again)."""

    def find_transaction(self, merchant_number: str, idempotency_key: str) -> LenderTransaction | None:
        """The transaction made with this key, if any: the lookup before any retry."""

    def void(self, merchant_number: str, purchase_id: str) -> LenderTransaction:
        """Cancel a purchase on its own business day, before the lender settles the day: it
        is never funded and appears on no report. Returns the purchase, now VOIDED (voiding
        a voided purchase returns it as it is: safe to repeat). PermanentPartnerError once
        its day has closed (refund it instead)."""

    def refund(self, request: RefundRequest) -> LenderTransaction:
        """Give back all or part of a settled purchase (never more than is left of it).
        AmbiguousWriteError when the answer was lost."""

    def settlement_report(self, merchant_number: str, day: date) -> SettlementReport:
        """What the lender settled for the merchant on `day`: purchases, refunds, fees, net."""
