"""`make screenshots`: the billing console's main pages, from the demo data, at 1366 and 1920 px.

On a throwaway var dir (its own SQLite database, never DATABASE_URL's) it runs `migrate` and
`seed_demo --history`, starts the web server the way `make run` does (run_embedded's
`commands()`; the console pages call no partner, so no sandboxes or worker), signs in with
Chromium as the demo's central billing user (their published demo second factor, read from
the database and never printed) and captures each page of PAGES, full page, at each width:

    artifacts/screenshots/<page>-<width>.png     every page at 1366 and 1920
    docs/screenshots/<page>.png                  the README's images (DOCS_PAGES, at 1366)

A page answering 4xx/5xx, or sending the signed-in user back to the sign-in, stops the run
with its name and address. Pages longer than MAX_HEIGHT are cut there, and every image is
reduced to 256 colours (Pillow), so the repository carries kilobytes, not megabytes.

    .venv/bin/python docs/screenshots.py [--keep] [--only dashboard,cases]

tests/console/test_console_screenshots_pages.py proves every page of PAGES answers 200 for
the demo user on the demo data, without a browser.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
SIZES = [(1366, 768), (1920, 1080)]  # a clinic's laptop, a central office's monitor
DOCS_WIDTH = 1366
MAX_HEIGHT = 4000
USER = "central"  # billing at all three demo locations (the shadow one included)
# The README's images (docs/screenshots/<name>.png).
DOCS_PAGES = ["console", "cases", "case-needs-attention", "case-completed", "correction-form", "dashboard"]
# Settings that would point the throwaway run at someone's real database, broker or address.
SCRUBBED_ENV = ["DATABASE_URL", "CELERY_BROKER_URL", "CHAIRSIDE_PUBLIC_URL", "CHAIRSIDE_PORT", "CHAIRSIDE_VAR_DIR"]


@dataclass(frozen=True)
class Page:
    name: str  # the file name: <name>-<width>.png
    path: str
    signed_in: bool = True
    opened: str = ""  # a <details> to open before the picture (the schedule, folded by default)


def pages() -> list[Page]:
    """The pages to capture, found in the demo data (Django set up, seed_demo --history run).

    The cases are picked by what they show, oldest first, so the same demo gives the same pages.
    """
    from django.urls import reverse

    from financing.models import CaseState, FinancedCase

    cases = FinancedCase.objects.filter(location__code="demo-main").order_by("captured_at", "pk")
    stopped = cases.filter(state=CaseState.NEEDS_ATTENTION).first()
    # A completed case with a correction: its page shows the schedule and what was corrected.
    completed = cases.filter(state=CaseState.COMPLETED, arrangement__corrections__isnull=False).first()
    if stopped is None or completed is None:
        raise RuntimeError("The demo history has no needs-attention or corrected completed case at demo-main: run seed_demo --history.")
    case_page = "admin:financing_financedcase_change"
    return [
        Page("sign-in", reverse("admin:login"), signed_in=False),
        Page("console", reverse("admin:index")),
        Page("cases", reverse("admin:financing_financedcase_changelist")),
        Page("case-needs-attention", reverse(case_page, args=[stopped.pk])),
        Page("case-completed", reverse(case_page, args=[completed.pk]), opened="details#schedule"),
        Page("correction-form", reverse("admin:financing_financedcase_correct", args=[completed.pk])),
        Page("corrections", reverse("admin:financing_correction_changelist")),
        Page("shadow-comparisons", reverse("admin:financing_shadowcomparison_changelist")),
        Page("dashboard", reverse("console-dashboard")),
        Page("your-sign-in", reverse("console-sign-in")),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args):
    """Run manage.py quietly (seed_demo prints the demo's second-factor secret); show it on failure."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-4000:]}")


def wait_for(port, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"The web server exited ({server.returncode}) before answering.")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"The web server did not answer on port {port} within {timeout} s.")


def shrink(path: Path):
    """256 colours, optimised: a console page (flat colours, text) looks the same at a third of the size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def capture(base_url: str, targets: list[Page], totp_code, widths: list[tuple[int, int]]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        # One signed-in session for every width: a TOTP code signs in once (django-otp refuses
        # the same code twice), and the viewport changes between widths.
        context = browser.new_context(viewport={"width": widths[0][0], "height": widths[0][1]})
        page = context.new_page()
        page.set_default_timeout(30_000)
        signed_out = browser.new_context().new_page()
        sign_in(page, base_url, totp_code)
        for width, height in widths:
            for tab in (page, signed_out):
                tab.set_viewport_size({"width": width, "height": height})
            for target in targets:
                tab = page if target.signed_in else signed_out
                response = tab.goto(base_url + target.path)
                if response is None or response.status >= 400:
                    sys.exit(f"{target.name} ({target.path}) answered {response.status if response else 'nothing'}.")
                if target.signed_in and "/login/" in tab.url:
                    sys.exit(f"{target.name} ({target.path}) sent {USER} back to the sign-in.")
                if target.opened:
                    tab.eval_on_selector(target.opened, "el => { el.open = true; }")
                path = OUT / f"{target.name}-{width}.png"
                full = tab.evaluate("document.documentElement.scrollHeight")
                clip = {"x": 0, "y": 0, "width": width, "height": MAX_HEIGHT} if full > MAX_HEIGHT else None
                tab.screenshot(path=str(path), full_page=True, clip=clip, animations="disabled", caret="hide")
                shrink(path)
                written.append(path)
        browser.close()
    return written


def sign_in(page, base_url, totp_code):
    from financing.management.commands.seed_demo import DEMO_PASSWORD

    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", USER)
    page.fill("#id_password", DEMO_PASSWORD)
    page.fill("#id_otp_token", totp_code())
    page.click("input[type=submit]")
    page.wait_for_load_state()
    if "/login/" in page.url:
        sys.exit(f"Signing in as {USER} failed: {page.inner_text('.errornote') if page.locator('.errornote').count() else page.url}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="Keep the throwaway var dir (its path is printed).")
    parser.add_argument("--only", default="", help="Comma-separated page names (default: all); docs/ is refreshed only for a full run.")
    options = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        sys.exit(f"No Chromium at {CHROMIUM} (apt-get install chromium).")

    var = Path(tempfile.mkdtemp(prefix="chairside-screenshots-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(CHAIRSIDE_VAR_DIR=str(var), CHAIRSIDE_PORT=str(port), PYTHONUNBUFFERED="1")
    server = None
    try:
        print(f"Demo data in {var} ...", flush=True)
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo", "--history")

        os.environ.clear()
        os.environ.update(env, DJANGO_SETTINGS_MODULE="config.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.db import connections
        from django_otp.oath import totp
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from financing.management.commands.run_embedded import commands
        from financing.management.commands.seed_demo import DEMO_DEVICE_NAME

        targets = pages()
        if options.only:
            wanted = set(options.only.split(","))
            unknown = wanted - {t.name for t in targets}
            if unknown:
                sys.exit(f"No such page: {', '.join(sorted(unknown))} (pages: {', '.join(t.name for t in targets)}).")
            targets = [t for t in targets if t.name in wanted]
        device = TOTPDevice.objects.get(user__username=USER, name=DEMO_DEVICE_NAME)
        key, step, t0, digits = device.bin_key, device.step, device.t0, device.digits
        connections.close_all()

        server = subprocess.Popen(commands(sys.executable)["web"], cwd=ROOT, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(port, server)
        written = capture(f"http://127.0.0.1:{port}", targets, lambda: f"{totp(key, step=step, t0=t0, digits=digits):0{digits}d}", SIZES)
        if not options.only:
            DOCS.mkdir(parents=True, exist_ok=True)
            for name in DOCS_PAGES:
                shutil.copyfile(OUT / f"{name}-{DOCS_WIDTH}.png", DOCS / f"{name}.png")
        for path in written:
            print(f"  {path.relative_to(ROOT)}  {path.stat().st_size // 1024} KB")
        print(f"{len(written)} screenshots in {OUT.relative_to(ROOT)}/" + ("" if options.only else f"; docs/ refreshed: {DOCS.relative_to(ROOT)}/"))
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        if options.keep:
            print(f"Kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
