"""Why a case stops for a person: every needs-attention reason Chairside gives, in one place.

Each reason is a sentence a billing clerk can act on (what happened, where to fix it), made
by one function here and used by the step that stops the case. Each is of a kind (`KINDS`):
`kind_of` tells the kind of a stored reason, so the console, the demo history and the
tests can ask "which kinds of problem are there?" without reading the steps' code.

The terms code (`financing.terms`) words its own reasons (`TermsError`): they are one kind
here, "terms", recognised by their wording.
"""

import re
from dataclasses import dataclass

from .terms import money


@dataclass(frozen=True)
class ReasonKind:
    key: str
    label: str  # a few words, for a list or a filter
    step: str  # the step that gives it
    pattern: re.Pattern


def _kind(key, label, step, pattern) -> ReasonKind:
    return ReasonKind(key, label, step, re.compile(pattern, re.S))


# In the order a case meets them. `kind_of` takes the first that matches.
KINDS = (
    _kind("patient_without_clinic", "Patient in no clinic", "application", r"^Patient \S+ belongs to no clinic in "),
    _kind("patient_other_clinic", "Patient of another clinic", "application", r"^Patient \S+ belongs to another clinic of this practice database "),
    _kind("plan_not_patients", "Plan is not the patient's", "application", r"^Treatment plan \S+ does not belong to patient "),
    _kind("plan_not_accepted", "Plan not accepted", "application", r"^Treatment plan \S+ is \w+, not accepted: "),
    _kind("plan_without_fees", "Plan has no fees", "application", r"^Treatment plan \S+ has no fees to finance\.$"),
    _kind("nothing_to_finance", "Down payment covers the plan", "application", r"^The down payment \(.*\) covers the whole plan "),
    _kind("application_refused", "Application refused", "application", r"^The application could not be sent: "),
    _kind("unrecordable_decision", "Decision cannot be recorded", "decision", r" sent a decision Chairside cannot record \("),
    _kind("approved_without_amount", "Approval without an amount", "arrangement", r" approved the application without an approved amount\."),
    _kind("promotion_not_offered", "Promotion not offered", "arrangement", r" did not offer .* for this approval \(offered: "),
    _kind(
        "terms",
        "Terms cannot be computed",
        "arrangement",
        # financing.terms' TermsError sentences.
        r"(minimum for |too small to spread over|must be more than \$0\.00|promotion runs |reduced-APR promotion needs"
        r"|APR \(.*\) has more than two|is not an amount of money|has more than two decimal places|cannot be negative"
        r"|first payment (day of the month )?must|^The requested down payment .* covers the whole plan|of a kind Chairside does not support)",
    ),
    # The arrangement's reasons name the record as the product calls it
    # (partners.pms_record_name: "payment agreement", "payment plan", "payment plan contract").
    _kind("agreement_rules", "Agreement breaks the PMS's rules", "arrangement", r" would reject this [a-z ]+ \("),
    _kind(
        "production_plan_changed", "Plan changed before its treatment was posted", "posted treatment",
        r"^Treatment plan \S+ changed in .* before its treatment was posted: ",
    ),
    _kind(
        "production_check_refused", "Posted treatment cannot be checked", "posted treatment",
        r" refused to show treatment plan \S+, so Chairside cannot tell whether its treatment was posted: ",
    ),
    _kind("agreement_exists", "Guarantor already has an agreement", "arrangement", r"^Guarantor account \S+ already has (an active|a) [a-z ]+ \("),
    _kind("agreement_refused", "Agreement refused", "arrangement", r" refused the (?!ledger note)[a-z ]+: "),
    _kind("agreement_differs", "Agreement stored with other terms", "arrangement", r" stored [a-z]+ \S+ with different terms than Chairside sent "),
    _kind("note_rules", "Ledger note breaks the PMS's rules", "ledger note", r" would reject the ledger note: "),
    _kind("note_refused", "Ledger note refused", "ledger note", r" refused the ledger note: "),
    # The money (Recording.PAYMENT): the purchase and its postings.
    _kind("no_fee_rate", "No merchant fee rate", "purchase", r" has no merchant fee rate for "),
    _kind("purchase_declined", "Purchase declined", "purchase", r" declined the purchase of "),
    _kind("purchase_refused", "Purchase refused", "purchase", r" refused the purchase of "),
    _kind("purchase_not_settled", "No settled purchase to post", "posting", r" to post: the purchase is not charged"),
    _kind("posting_refused", "Ledger posting refused", "posting", r" refused to post the "),
    _kind("posting_differs", "Ledger posting stored differently", "posting", r" stored the CareCredit postings? differently "),
    _kind("step_interrupted", "Step interrupted again and again", "any", r" was interrupted \d+ times without finishing\. "),
    _kind("step_failing", "Step failing, retries used up", "any", r" failed \d+ times; the last error was: "),
)
KIND = {kind.key: kind for kind in KINDS}


def kind_of(reason: str) -> str:
    """The kind of a needs-attention reason (`KINDS`' key), or "" for one not made here."""
    for kind in KINDS:
        if kind.pattern.search(reason or ""):
            return kind.key
    return ""


# --- what the other state changes say (not a person's work: no kind) -----------------------


def declined(lender_name: str) -> str:
    return f"{lender_name} declined the application."


def referred(lender_name: str) -> str:
    return f"{lender_name} referred the application: the practice may call {lender_name}."


def lender_expired(lender_name: str) -> str:
    return f"{lender_name} reports the application expired."


def no_decision(lender_name: str, days: int) -> str:
    return f"No decision from {lender_name} within {days} days."


SHADOW_COMPLETED = "Shadow mode: the arrangement was computed, not written."


def waiting_for_production(pms_name: str) -> str:
    return (
        f"Waiting for the treatment to be posted in {pms_name}: {pms_name} takes a payment plan only over "
        "completed, posted procedures, so it is written as soon as they are."
    )


def production_posted(pms_name: str) -> str:
    return f"The treatment was posted in {pms_name}: writing the payment plan."


def waiting_to_charge(pms_name: str) -> str:
    return (
        f"Waiting for the treatment to be posted in {pms_name}: the patient's CareCredit account is charged "
        "as soon as it is."
    )


def waiting_for_charge_now() -> str:
    return "Waiting for staff to charge the purchase: this location charges CareCredit when staff click Charge now."


def posted_to_charge(pms_name: str) -> str:
    return f"The treatment was posted in {pms_name}: charging the purchase."


def charge_now_clicked(by: str, treatment_day: str) -> str:
    return f"Charge now, by {by}, for the treatment on {treatment_day}: charging the purchase."


# --- application ---------------------------------------------------------------------------


def patient_without_clinic(patient_id: str, pms_name: str, serves: str) -> str:
    return f"Patient {patient_id} belongs to no clinic in {pms_name}; this location serves {serves}."


def patient_of_another_clinic(patient_id: str, clinic_id: str, serves: str) -> str:
    return (
        f"Patient {patient_id} belongs to another clinic of this practice database "
        f"(clinic {clinic_id}); this location serves {serves}."
    )


def plan_not_patients(plan_id: str, patient_id: str) -> str:
    return f"Treatment plan {plan_id} does not belong to patient {patient_id}."


def plan_not_accepted(plan_id: str, status: str, pms_name: str) -> str:
    return f"Treatment plan {plan_id} is {status}, not accepted: the patient must accept it in {pms_name} first."


def plan_without_fees(plan_id: str) -> str:
    return f"Treatment plan {plan_id} has no fees to finance."


def nothing_to_finance(down_payment, plan_total) -> str:
    return f"The down payment ({money(down_payment)}) covers the whole plan ({money(plan_total)}): there is nothing to finance."


def application_refused(error) -> str:
    return f"The application could not be sent: {error}"


def approved_on_card(lender_name: str, last4: str, amount) -> str:
    """An existing cardholder approved on their card: no application (not a person's work)."""
    card = f"the card ending {last4}" if last4 else "their card"
    return f"Existing {lender_name} cardholder: {lender_name} approved {money(amount)} on {card}, so no application was needed."


# --- decision ------------------------------------------------------------------------------


def unrecordable_decision(lender_name: str, problem: str) -> str:
    return f"{lender_name} sent a decision Chairside cannot record ({problem}). Check the application with {lender_name}, then resume the case."


# --- arrangement -----------------------------------------------------------------------------


def approved_without_amount(lender_name: str) -> str:
    return f"{lender_name} approved the application without an approved amount. Check the approval with {lender_name}, then resume the case."


def promotion_not_offered(lender_name: str, promotion_label: str, offered: str) -> str:
    return (
        f"{lender_name} did not offer {promotion_label} for this approval (offered: {offered}). "
        "Choose an offered promotion on the case, then resume it."
    )


# `record` is what the product calls the arrangement (partners.pms_record_name); the default
# is the Dentrix G-series' word.


def agreement_rules(pms_name: str, problems: dict, *, record: str = "payment agreement") -> str:
    detail = "; ".join(f"{field}: {message}" for field, message in problems.items())
    return f"{pms_name} would reject this {record} ({detail})."


def agreement_exists(
    pms_name: str, guarantor_id: str, agreement_id: str, *, record: str = "payment agreement", any_status: bool = False
) -> str:
    """`any_status`: the product counts every record on the account, closed ones too
    (Dentrix Ascend: one plan per guarantor), so closing it does not help: deleting does."""
    if any_status:
        return (
            f"Guarantor account {guarantor_id} already has a {record} ({pms_name} id {agreement_id}); "
            f"{pms_name} allows one per guarantor, active or not. Delete it in {pms_name} if it is "
            "no longer needed, then resume this case."
        )
    return (
        f"Guarantor account {guarantor_id} already has an active {record} "
        f"({pms_name} id {agreement_id}); {pms_name} allows one per account. Close or "
        f"adjust it in {pms_name}, then resume this case."
    )


def agreement_refused(pms_name: str, error, *, record: str = "payment agreement") -> str:
    return f"{pms_name} refused the {record}: {error}"


def agreement_differs(pms_name: str, agreement_id: str, mismatch: str, *, record: str = "payment agreement") -> str:
    # "stored agreement 7001", "stored plan 7003", "stored contract 7002": the record's last word.
    return (
        f"{pms_name} stored {record.split()[-1]} {agreement_id} with different terms than Chairside sent "
        f"({mismatch}). Check it in {pms_name} before resuming."
    )


# --- the wait for posted treatment (products that write a plan only over posted production) ---


def in_house_terms(reason: str) -> str:
    """The practice's own remainder (Shortfall.IN_HOUSE) cannot be put on its in-house terms:
    the terms code's sentence, so the reason is of the "terms" kind."""
    return f"The in-house plan for the rest cannot be computed: {reason}"


def plan_changed_before_posting(plan_id: str, pms_name: str, change: str) -> str:
    """`change`: what happened to the plan, in a few words ("it is rejected", "procedure 9003
    is no longer on it")."""
    return (
        f"Treatment plan {plan_id} changed in {pms_name} before its treatment was posted: {change}. Nothing was "
        f"written. If the patient is going ahead, put the plan back in {pms_name} and resume the case; "
        "otherwise cancel it."
    )


def production_check_refused(pms_name: str, plan_id: str, error) -> str:
    return (
        f"{pms_name} refused to show treatment plan {plan_id}, so Chairside cannot tell whether its treatment was "
        f"posted: {str(error).rstrip('.')}. Fix it in {pms_name} (the connection or the patient's record), then "
        "resume the case."
    )


# --- ledger note ---------------------------------------------------------------------------


def note_rules(pms_name: str, problems: dict) -> str:
    return f"{pms_name} would reject the ledger note: " + "; ".join(problems.values())


def note_refused(pms_name: str, error) -> str:
    return f"{pms_name} refused the ledger note: {error}"


# --- the money: purchase and postings (Recording.PAYMENT) -----------------------------------


def no_fee_rate(promotion_label: str) -> str:
    return (
        f"The arrangement template has no merchant fee rate for {promotion_label}, so the fee cannot be "
        "worked out. Nothing was charged. Add the rate from your CareCredit agreement to the template, "
        "then resume the case."
    )


def purchase_declined(lender_name: str, amount, why: str) -> str:
    why = (why or "no reason given").rstrip(".")
    return (
        f"{lender_name} declined the purchase of {money(amount)}: {why}. Nothing was charged. "
        f"Check the account with {lender_name}, then resume or cancel the case."
    )


def purchase_refused(lender_name: str, amount, error) -> str:
    return f"{lender_name} refused the purchase of {money(amount)}: {str(error).rstrip('.')}. Nothing was charged."


def approval_expired_unused(lender_name: str, expires_on_text: str) -> str:
    """Not a person's work as such (the case is over), but billing is told."""
    return f"The {lender_name} approval expired unused on {expires_on_text}."


def charged(lender_name: str, amount, by: str = "") -> str:
    who = f" (Charge now, by {by})" if by else ""
    return f"Charged {money(amount)} to the patient's {lender_name} account{who}."


def purchase_not_settled(lender_name: str) -> str:
    return f"There is nothing to post: the purchase is not charged at {lender_name}. Check the purchase, then resume the case."


def posting_refused(pms_name: str, kind_label: str, error) -> str:
    return f"{pms_name} refused to post the {kind_label}: {str(error).rstrip('.')}. Fix it in {pms_name}, then resume the case."


def posting_differs(pms_name: str, mismatch: str) -> str:
    return f"{pms_name} stored the CareCredit posting differently than Chairside sent ({mismatch}). Check it in {pms_name} before resuming."


# --- any step ------------------------------------------------------------------------------


def step_interrupted(step: str, times: int) -> str:
    return f"{step} was interrupted {times} times without finishing. Chairside stopped retrying."


def step_failing(step: str, attempts: int, error) -> str:
    return (
        f"{step} failed {attempts} times; the last error was: {str(error).rstrip('.')}. "
        "Chairside stopped retrying: check the partner, then resume the case."
    )
