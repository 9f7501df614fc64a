"""`make screenshots` (docs/screenshots.py): every page it captures answers 200 for the demo's
central billing user on the demo data (and the sign-in page for someone signed out), without
a browser, so a renamed URL or a demo without a needs-attention case fails here, not halfway
through a screenshot run."""

import importlib.util
import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from tests.console.console_factories import console_client

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def tool():
    spec = importlib.util.spec_from_file_location("screenshots_tool", ROOT / "docs" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_answers_200_for_the_demo_user_on_the_demo_data():
    screenshots = tool()
    call_command("seed_demo", history=True, stdout=io.StringIO())
    pages = screenshots.pages()
    assert [p.name for p in pages] == [
        "sign-in", "console", "cases", "case-needs-attention", "case-completed", "correction-form", "corrections",
        "shadow-comparisons", "dashboard", "your-sign-in",
    ]
    assert set(screenshots.DOCS_PAGES) <= {p.name for p in pages}
    user = console_client(get_user_model().objects.get(username=screenshots.USER))
    for page in pages:
        response = (user if page.signed_in else Client()).get(page.path)
        assert response.status_code == 200, (page.name, page.path, response.status_code)
    # The picked cases show what their names say.
    body = {p.name: user.get(p.path).content.decode() for p in pages if p.name.startswith("case-")}
    assert 'id="case-banner"' in body["case-needs-attention"]
    assert 'id="schedule"' in body["case-completed"]


def test_without_the_demo_history_it_says_so_rather_than_capturing_empty_pages():
    screenshots = tool()
    call_command("seed_demo", stdout=io.StringIO())
    with pytest.raises(RuntimeError, match="seed_demo --history"):
        screenshots.pages()
