"""What a financed case tells people, and whom. Bodies come from templates/notifications/.

Notifications carry the case reference and at most the patient's first name and last
initial: no DOB, no full name, no address, no account numbers.
"""

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from notifications.models import Channel, ContactPreference
from notifications.services import Message, queue

from .models import FinancedCase, Membership


def case_url(case: FinancedCase) -> str:
    return settings.CHAIRSIDE_PUBLIC_URL + reverse("admin:financing_financedcase_change", args=[case.pk])


def _channels(user, template) -> list[tuple[Channel, str]]:
    contact = ContactPreference.objects.filter(user=user).first()
    by_email = contact.by_email if contact else True
    by_sms = contact.by_sms if contact else False
    channels = []
    if template.notify_email and by_email and user.email:
        channels.append((Channel.EMAIL, user.email))
    if template.notify_sms and by_sms and contact and contact.phone:
        channels.append((Channel.SMS, contact.phone))
    return channels


def _queue_for(users, case: FinancedCase, template_name: str, subject: str, context: dict, key_suffix: str = ""):
    context = {"case": case, "case_url": case_url(case), "location": case.location, **context}
    for user in users:
        for channel, recipient in _channels(user, case.location.template):
            body = render_to_string(f"notifications/{template_name}.{'sms' if channel == Channel.SMS else 'txt'}", context).strip()
            html = render_to_string(f"notifications/{template_name}.html", context) if channel == Channel.EMAIL else ""
            queue(
                Message(
                    dedupe_key=f"case:{case.pk}:{template_name}{key_suffix}:{channel}:{user.pk}",
                    reference=case.reference,
                    channel=channel,
                    recipient=recipient,
                    template=template_name,
                    subject=subject,
                    body=body,
                    html_body=html,
                )
            )


def queue_approved(case: FinancedCase):
    if case.coordinator is None:
        return
    arrangement = case.arrangement
    subject = f"Approved: {case.reference}, {arrangement.number_of_payments} payments of ${arrangement.recurring_amount:,.2f}"
    _queue_for([case.coordinator], case, "case_approved", subject, {"arrangement": arrangement, "decision": case.decision})


def queue_declined(case: FinancedCase):
    if case.coordinator is None:
        return
    _queue_for([case.coordinator], case, "case_declined", f"Declined: {case.reference}, talk alternatives", {})


def queue_needs_attention(case: FinancedCase):
    billing = [
        m.user
        for m in Membership.objects.filter(
            location=case.location, role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
        ).select_related("user")
    ]
    _queue_for(
        billing,
        case,
        "case_needs_attention",
        f"Needs attention: {case.reference} at {case.location.name}",
        {},
        key_suffix=f":{int(case.state_changed_at.timestamp())}",
    )
