"""/api/docs/ works offline: Swagger UI comes from Chairside's own static files
(drf-spectacular-sidecar), and `make run`'s web server serves them."""

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.staticfiles import finders
from django.test import Client, override_settings

from financing.management.commands.run_embedded import commands
from tests.notifications.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


class References(HTMLParser):
    """Every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


def test_the_docs_page_names_no_other_host():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"https?://", html) == []  # nor in the inline script
    urls = references(html)
    assert sorted(urls) == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    assert '"validatorUrl": null' in html  # no badge fetched from the public validator


@pytest.fixture(scope="module")
def embedded_web(tmp_path_factory):
    """The web server exactly as `make run` starts it (run_embedded's command), on a free port,
    on the embedded defaults `make run` uses: not the run's PostgreSQL or broker (CI sets
    those for the tests, and the server would look for a database named by the URL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["CHAIRSIDE_VAR_DIR"] = str(tmp_path_factory.mktemp("embedded-web"))
    port = free_port()
    with override_settings(CHAIRSIDE_PORT=port):
        command = commands(sys.executable)["web"]
    assert command[-1] == f"127.0.0.1:{port}"
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                requests.get(f"{base}/api/schema/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "runserver did not start in 60 s"
                time.sleep(0.2)  # waiting for a process to listen, not for time to pass
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_make_runs_web_server_serves_the_docs_and_every_file_they_load(embedded_web):
    page = requests.get(f"{embedded_web}/api/docs/", timeout=10)
    assert page.status_code == 200
    kinds = {}
    for url in references(page.text):
        assert urlsplit(url).netloc == "" and url.startswith("/static/"), url
        served = requests.get(f"{embedded_web}{url}", timeout=10)
        assert served.status_code == 200, url
        assert served.content == Path(finders.find(url.removeprefix("/static/"))).read_bytes(), url
        kinds[url.rsplit(".", 1)[-1]] = served.headers["Content-Type"].split(";")[0]
    assert kinds == {"png": "image/png", "css": "text/css", "js": "text/javascript"}
    schema = requests.get(f"{embedded_web}/api/schema/?format=json", timeout=10)
    assert schema.status_code == 200 and "/api/v1/cases/" in schema.json()["paths"]


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
def test_the_docs_render_the_operations_with_no_network_beyond_the_machine(embedded_web, monkeypatch):
    playwright_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    outside = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(15_000)

            def offline(route):  # as on a machine with no way out
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto(f"{embedded_web}/api/docs/")
            page.get_by_text("Chairside API").first.wait_for()
            operations = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert {"/api/v1/cases/", "/api/v1/cases/{id}/"} <= {o.replace("\u200b", "") for o in operations}
    assert outside == []
