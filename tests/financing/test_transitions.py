"""The state machine allows exactly the transitions of DESIGN.md."""

import pytest

from financing import services
from financing.models import TERMINAL_STATES, CaseState, FinancedCase

pytestmark = pytest.mark.django_db

ALL = [s.value for s in CaseState]
EXPECTED = {
    # approved: an existing cardholder approved on their card, no application (issue 16).
    "captured": {"application_sent", "approved", "needs_attention", "cancelled"},
    "application_sent": {"awaiting_decision", "approved", "declined", "expired", "needs_attention", "cancelled"},
    "awaiting_decision": {"approved", "declined", "expired", "needs_attention", "cancelled"},
    # purchased: recorded as a payment (issue 15); expired: an approval that lapsed unused.
    "approved": {"arrangement_written", "awaiting_production", "purchased", "completed", "expired", "needs_attention", "cancelled"},
    "awaiting_production": {"approved", "expired", "needs_attention", "cancelled"},
    "arrangement_written": {"completed", "needs_attention"},
    "purchased": {"posted", "needs_attention", "cancelled"},
    "posted": {"completed", "needs_attention"},
    "needs_attention": {"captured", "application_sent", "awaiting_decision", "approved", "awaiting_production", "arrangement_written",
                        "purchased", "posted", "cancelled"},
    "completed": set(),
    "declined": set(),
    "expired": set(),
    "cancelled": set(),
}


def test_the_transition_table_is_the_designed_one():
    assert {k: set(v) for k, v in services.ALLOWED_TRANSITIONS.items()} == EXPECTED
    assert TERMINAL_STATES == {"completed", "declined", "expired", "cancelled"}


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_every_transition_is_allowed_or_refused_as_designed(source, target, location, tasks):
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id=f"{source}-{target}", promotion="deferred_12", state=source)
    if target in EXPECTED[source]:
        services.transition(case, target, reason="test")
        case.refresh_from_db()
        assert case.state == target
        if target == "needs_attention":
            assert case.resume_state == source
    else:
        with pytest.raises(services.InvalidTransition):
            services.transition(case, target)
        case.refresh_from_db()
        assert case.state == source
