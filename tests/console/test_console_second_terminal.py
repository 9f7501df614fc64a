"""A second terminal finds the running `make run` whatever CHAIRSIDE_PORT it was started with:
`make run` writes where its web server listens, `simulate` (and the README's curl examples)
read it."""

from django.conf import settings as django_settings

from financing.management.commands.run_embedded import Command as RunEmbedded
from sandboxes.management.commands.simulate import web_url


def test_make_run_writes_where_it_listens_and_simulate_reads_it(settings, tmp_path):
    settings.WEB_URL_FILE = tmp_path / "web.url"
    settings.CHAIRSIDE_PORT = 8123
    settings.CHAIRSIDE_PUBLIC_URL = "http://127.0.0.1:8000"  # what a terminal without CHAIRSIDE_PORT computes

    assert web_url() == "http://127.0.0.1:8000"  # nothing running: the configured address
    assert RunEmbedded.announce_web_url() == "http://127.0.0.1:8123"
    assert settings.WEB_URL_FILE.read_text() == "http://127.0.0.1:8123\n"
    assert web_url() == "http://127.0.0.1:8123"
    assert web_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000"  # --url wins


def test_the_readme_reads_the_same_file():
    readme = (django_settings.BASE_DIR / "README.md").read_text()
    assert "127.0.0.1:8000/api" not in readme
    assert 'BASE=$(cat "${CHAIRSIDE_VAR_DIR:-var}/web.url")' in readme
    assert 'curl -s -X POST "$BASE/api/v1/cases/"' in readme

