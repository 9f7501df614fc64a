"""`manage.py simulate` against the running system (a real worker, the web app, both
sandboxes): every persona settles as it implies, and some cases end needing attention
through what Dentrix holds or says, not by a state written for them."""

import io

import pytest
from django.core.management import call_command

from financing import reasons
from financing.models import CaseState, FinancedCase, Location
from tests.conftest import make_location, make_user
from tests.test_integration import worker  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def simulate(location, cases):
    out = io.StringIO()
    call_command("simulate", cases=cases, location=location.code, timeout=90, seed=7, stdout=out)
    return out.getvalue()


def test_simulate_ends_some_cases_needing_attention_through_the_sandboxes(worker, template, sandboxes):  # noqa: F811
    main = make_location(template, sandboxes, code="main")
    make_user("cora", main)
    output = simulate(main, 12)

    assert "All 12 cases settled as their personas imply." in output
    stopped = FinancedCase.objects.filter(location=main, state=CaseState.NEEDS_ATTENTION)
    kinds = sorted(reasons.kind_of(case.state_reason) for case in stopped)
    assert kinds == ["agreement_exists", "agreement_refused"]
    assert "Needs attention, as their personas imply" in output
    # Dentrix holds only the hand-typed agreement for the first, nothing of Chairside's for either.
    for case in stopped:
        ours = [a for a in sandboxes.agreements(case.guarantor_id) if case.marker in a["note"]]
        assert ours == []
    assert FinancedCase.objects.filter(location=main, state=CaseState.COMPLETED).count() == 7


def test_in_shadow_mode_the_same_personas_complete(worker, template, sandboxes):  # noqa: F811
    south = make_location(template, sandboxes, code="south", mode=Location.Mode.SHADOW)
    make_user("sol", south)
    output = simulate(south, 12)
    assert "All 12 cases settled as their personas imply." in output
    assert not FinancedCase.objects.filter(location=south, state=CaseState.NEEDS_ATTENTION).exists()
