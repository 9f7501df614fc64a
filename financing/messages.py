"""What a financed case tells people, and whom. Bodies come from templates/notifications/.

Notifications carry the case reference and at most the patient's first name and last
initial: no DOB, no full name, no address, no account numbers.
"""

import hashlib
import logging

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from notifications.models import Channel, ContactPreference, Notification
from notifications.services import Message, queue

from . import display, in_house
from .models import FinancedCase, Membership, related_or_none
from .outcomes import cancelled_outcome

log = logging.getLogger(__name__)

# What each message is, in the words of an alert about it.
TEMPLATE_LABELS = {
    "case_approved": "approval confirmation",
    "case_declined": "decline notice",
    "case_needs_attention": "needs-attention alert",
    "case_cancelled": "cancellation notice",
    "patient_apply_link": "credit application link to the patient",
    "case_approval_expired": "expired-approval notice",
}


def template_label(template: str) -> str:
    """What a message is, in words ("approval confirmation"), never its template name."""
    return TEMPLATE_LABELS.get(template, template.replace("_", " "))


def case_url(case: FinancedCase) -> str:
    return settings.CHAIRSIDE_PUBLIC_URL + reverse("admin:financing_financedcase_change", args=[case.pk])


def _channels(user, template=None) -> list[tuple[Channel, str]]:
    """The user's chosen channels, as far as the location's template allows them."""
    contact = ContactPreference.objects.filter(user=user).first()
    by_email = contact.by_email if contact else True
    by_sms = contact.by_sms if contact else False
    allow_email = template.notify_email if template else True
    allow_sms = template.notify_sms if template else True
    channels = []
    if allow_email and by_email and user.email:
        channels.append((Channel.EMAIL, user.email))
    if allow_sms and by_sms and contact and contact.phone:
        channels.append((Channel.SMS, contact.phone))
    if not channels and user.email:
        # A preference the template overrides (SMS only, SMS off) must not swallow the
        # message: email is the channel of last resort.
        channels.append((Channel.EMAIL, user.email))
    return channels


def _queue_for(users, case: FinancedCase, template_name: str, subject: str, context: dict, key_suffix: str = "", escalate: bool = True, send=queue):
    """One message per user and channel, handed to `send`: notifications' queue, or (the demo
    history) something that records them as delivered long ago."""
    context = {"case": case, "case_url": case_url(case), "location": case.location, **context}
    for user in users:
        for channel, recipient in _channels(user, case.location.template):
            body = render_to_string(f"notifications/{template_name}.{'sms' if channel == Channel.SMS else 'txt'}", context).strip()
            html = render_to_string(f"notifications/{template_name}.html", context) if channel == Channel.EMAIL else ""
            send(
                Message(
                    dedupe_key=f"case:{case.pk}:{template_name}{key_suffix}:{channel}:{user.pk}",
                    reference=case.reference,
                    channel=channel,
                    recipient=recipient,
                    template=template_name,
                    subject=subject,
                    body=body,
                    html_body=html,
                    escalate=escalate,
                )
            )


def billing_members(location):
    return [
        m.user
        for m in Membership.objects.filter(
            location=location, role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
        ).select_related("user")
    ]


def queue_approved(case: FinancedCase, key_suffix: str = "", send=queue):
    if case.coordinator is None:
        return
    arrangement = related_or_none(case, "arrangement")
    # Only a case recorded as a payment and posted has a purchase to tell of: no query for the others.
    purchase = related_or_none(case, "purchase") if case.posted_at is not None else None
    if purchase is not None:
        # Recorded as a payment: charged, and on the ledger (an in-house arrangement too,
        # where the practice carries a remainder).
        subject = f"Approved and charged: {case.reference}, {display.money(purchase.amount)} to {case.location.lender_name}"
    else:
        subject = f"Approved: {case.reference}, {arrangement.number_of_payments} payments of {display.money(arrangement.recurring_amount)}"
    _queue_for(
        [case.coordinator], case, "case_approved", subject,
        {
            "arrangement": arrangement, "decision": case.decision, "purchase": purchase if case.posted_at else None,
            # What the practice itself carries beside the CareCredit payment ("" when nothing).
            "in_house": in_house.summary(arrangement) if case.posted_at else "",
        },
        key_suffix=key_suffix, send=send,
    )


def queue_declined(case: FinancedCase, key_suffix: str = "", send=queue):
    if case.coordinator is None:
        return
    _queue_for([case.coordinator], case, "case_declined", f"Declined: {case.reference}, talk alternatives", {}, key_suffix=key_suffix, send=send)


def attention_key(reason: str) -> str:
    """A needs-attention reason, as the part of an alert's de-duplication key that names it.

    Billing is alerted once per distinct reason per case: a case resumed before its cause
    was fixed stops again with the same reason, and alerting everyone again each time would
    teach them to ignore the alerts. A changed reason is news, and alerts again. The key is
    the delivery record's unique key, so this holds in the database, across processes.
    Whitespace does not make a reason new.
    """
    return hashlib.sha256(" ".join(reason.split()).encode()).hexdigest()[:16]


def queue_needs_attention(case: FinancedCase, send=queue):
    _queue_for(
        billing_members(case.location),
        case,
        "case_needs_attention",
        f"Needs attention: {case.reference} at {case.location.name}",
        {},
        key_suffix=f":reason-{attention_key(case.state_reason)}",
        send=send,
    )


def queue_approval_expired(case: FinancedCase, send=queue):
    """Tell billing, once, that an approval lapsed before it was charged (reported, never
    silently dropped): the patient may need to apply again before the treatment."""
    _queue_for(
        billing_members(case.location), case, "case_approval_expired",
        f"Approval expired unused: {case.reference} at {case.location.name}", {}, send=send,
    )


def queue_refund_stuck(refund, send=queue):
    """Tell billing, once per refund, that a refund stopped short (the lender refused it,
    gave no answer after every attempt, or the PMS refused its adjustment): money may be
    back with the patient without its adjustment on the ledger, or not back at all."""
    case = refund.case
    _queue_for(
        billing_members(case.location), case, "refund_needs_attention",
        f"Refund needs attention: {case.reference} at {case.location.name}", {"refund": refund},
        key_suffix=f":refund-{refund.pk}", send=send,
    )


def queue_cancelled(case: FinancedCase, *, by=None, send=queue):
    """Tell the coordinator, once, that the case was cancelled and what that left in the PMS
    (a cancellation is final, so its key needs no suffix: queuing it again sends nothing)."""
    if case.coordinator is None:
        return
    outcome = cancelled_outcome(case, related_or_none(case, "arrangement"), related_or_none(case, "ledger_note"))
    pms = case.location.pms_name
    if outcome.written is None:
        headline = f"may have been written to {pms}"
    elif outcome.written:
        headline = f"agreement stays in {pms}"
    else:
        headline = f"nothing written to {pms}"
    by_name = (by.get_full_name() or by.get_username()) if by is not None else ""
    _queue_for(
        [case.coordinator], case, "case_cancelled", f"Cancelled: {case.reference}, {headline}",
        {"outcome": outcome, "by": by_name, "headline": headline}, send=send,
    )


def queue_patient_apply_link(case: FinancedCase, *, phone: str, email: str):
    """At hand-off, the CareCredit apply link to the patient, only with recorded consent.

    The contact comes straight from the PMS read of the hand-off; it is kept only in the
    (encrypted) delivery record. SMS when Dentrix has a phone, else email.
    """
    if not case.patient_consents_to_messages or not case.apply_url:
        return
    if phone:
        channel, recipient = Channel.SMS, phone
    elif email:
        channel, recipient = Channel.EMAIL, email
    else:
        return
    context = {"case": case, "location": case.location}
    queue(
        Message(
            dedupe_key=f"case:{case.pk}:patient_apply_link:{channel}",
            reference=case.reference,
            channel=channel,
            recipient=recipient,
            template="patient_apply_link",
            subject=f"Your CareCredit application with {case.location.name}",
            body=render_to_string(f"notifications/patient_apply_link.{'sms' if channel == Channel.SMS else 'txt'}", context).strip(),
            html_body=render_to_string("notifications/patient_apply_link.html", context) if channel == Channel.EMAIL else "",
        )
    )


def on_delivery_failed(sender, notification_id: int, **kwargs):
    """A case notification failed for good: the failure is on the case page already; tell
    the location's billing members too. Sent with escalate=False, so if this alert fails
    in turn, nobody is alerted about it (no loop)."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return
    case = FinancedCase.objects.select_related("location", "location__template").filter(reference=notification.reference).first()
    if case is None:
        return
    what = template_label(notification.template)
    _queue_for(
        billing_members(case.location),
        case,
        "notification_failed",
        f"Not delivered: {what} for {case.reference}",
        {"notification": notification, "what": what},
        key_suffix=f":{notification.pk}",
        escalate=False,
    )
    log.info("case %s: billing told that notification %s failed", case.reference, notification.pk)
