"""The dashboard of `herald dev`, driven in headless Chromium through Playwright.

Two uploads through boto3: one is delivered, one is refused by the SMTP server (550 for its
recipient) and parked in the dead-letter store. In the browser: both are listed, the sent
one's trace and rendered email are shown (subject, text, and the HTML inside the sandboxed
frame), and the parked one is replayed with its button once the server accepts, after which
the server holds exactly one message with that Message-ID. A screenshot of the end state is
kept as target/e2e-artifacts/dashboard.png.
"""

import shutil
import subprocess
import urllib.request
from pathlib import Path

from aiosmtpd.controller import Controller
from playwright.sync_api import expect, sync_playwright

from conftest import (
    HERALD_BIN, HeraldProcess, Recorder, dev_s3_client as s3_client, free_port, smtp_config,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "target" / "e2e-artifacts"
REFUSED = "late@example.com"

RULES = f"""
[dead_letter]
path = "state/herald.redb"

[trace]
dir = "traces"

[[rule]]
name = "reports"
prefix = "reports/"
to = ["Team <team@example.com>"]
subject = "Report ready: {{{{ object.name }}}}"
text = "Plain body for {{{{ object.key }}}} ({{{{ object.size }}}} bytes)"
html = "<p>HTML body for <b>{{{{ object.name }}}}</b></p>"

[[rule]]
name = "late"
prefix = "late/"
to = ["{REFUSED}"]
subject = "Late file: {{{{ object.name }}}}"
"""


class Gatekeeper(Recorder):
    """A Recorder that answers 550 for one recipient until told to accept it."""

    def __init__(self):
        super().__init__()
        self.refusing = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == REFUSED and self.refusing:
            return "550 5.1.1 mailbox unavailable for now"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def with_message_id(self, message_id):
        with self.lock:
            return [m for m in self.messages if m.message["Message-ID"] == message_id]



def test_dashboard_lists_traces_shows_the_email_and_replays_a_dead_letter(tmp_path, capsys):
    # Fails rather than skips: scripts/test installs Debian's chromium when it is missing.
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium"
    gatekeeper = Gatekeeper()
    smtp = Controller(gatekeeper, hostname="127.0.0.1", port=free_port())
    smtp.start()
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(smtp.port, RULES), encoding="utf-8")
    herald = HeraldProcess(
        ["--config", str(config), "dev", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--dashboard", "127.0.0.1:0"],
        cwd=tmp_path,
    )
    try:
        endpoint = herald.wait_for_line("ready: ")
        dashboard = herald.wait_for_text("dashboard:").split("dashboard:", 1)[1].strip()
        s3 = s3_client(endpoint)
        s3.put_object(Bucket="uploads", Key="reports/q3 summary.txt", Body=b"numbers\n")
        herald.wait_for_text("sent by rule \"reports\"")
        s3.put_object(Bucket="uploads", Key="late/overdue.csv", Body=b"a,b\n")
        herald.wait_for_text("parked as")
        drive_browser(tmp_path, dashboard, gatekeeper, capsys)
    finally:
        code = herald.stop()
        smtp.stop()
    assert code == 0, "".join(herald.output)


def drive_browser(tmp_path, dashboard, gatekeeper, capsys):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            check_list_trace_and_email(page, dashboard)
            message_id = late_message_id(page, dashboard)
            replay(page, gatekeeper)
            delivered = gatekeeper.with_message_id(message_id)
            assert len(delivered) == 1, [m.message["Message-ID"] for m in gatekeeper.messages]
            assert delivered[0].rcpt_tos == [REFUSED]
            screenshot(page, capsys)
        finally:
            browser.close()


def check_list_trace_and_email(page, dashboard):
    page.goto(dashboard + "/")
    uploads = page.locator("table.uploads")
    expect(uploads).to_contain_text("reports/q3 summary.txt")
    expect(uploads).to_contain_text("late/overdue.csv")
    expect(page.locator("tr", has_text="late/overdue.csv")).to_contain_text("failed")
    expect(page.locator("tr", has_text="reports/q3 summary.txt")).to_contain_text("sent")

    page.get_by_role("link", name="reports/q3 summary.txt").click()
    expect(page.locator("h1")).to_contain_text("Upload")
    steps = page.locator("ol.steps")
    expect(steps).to_contain_text("rules: reports")
    expect(steps).to_contain_text("Report ready: q3 summary.txt")
    expect(steps).to_contain_text("via smtp")

    page.get_by_role("link", name="view email 1").click()
    headers = page.locator("table.headers")
    expect(headers.locator("tr", has_text="Subject")).to_contain_text("Report ready: q3 summary.txt")
    expect(headers.locator("tr", has_text="To")).to_contain_text("team@example.com")
    expect(page.locator("pre.text-part")).to_have_text(
        "Plain body for reports/q3 summary.txt (8 bytes)"
    )
    frame = page.locator("iframe.html-part")
    assert frame.get_attribute("sandbox") == "", "the frame may run no script"
    expect(page.frame_locator("iframe.html-part").locator("p")).to_have_text(
        "HTML body for q3 summary.txt"
    )
    expect(page.frame_locator("iframe.html-part").locator("b")).to_have_text("q3 summary.txt")


def late_message_id(page, dashboard):
    """The parked email's Message-ID, as its trace shows it."""
    page.goto(dashboard + "/?status=failed")
    page.get_by_role("link", name="late/overdue.csv").click()
    expect(page.locator("ol.steps")).to_contain_text("550")
    page.get_by_role("link", name="view email 1").click()
    cell = page.locator("table.headers tr", has_text="Message-ID").locator("td")
    message_id = cell.inner_text().strip()
    assert message_id.startswith("<herald."), message_id
    return message_id


def replay(page, gatekeeper):
    page.get_by_role("link", name="Dead letters").click()
    row = page.locator("table.dead-letters tr", has_text="late/overdue.csv")
    expect(row).to_contain_text("550")
    gatekeeper.refusing = False
    row.get_by_role("button", name="Replay").click()
    notice = page.locator("p.notice")
    expect(notice).to_contain_text("replayed")
    expect(notice).to_contain_text("sent via smtp")
    expect(page.locator("p.empty")).to_have_text("Nothing is parked.")


def screenshot(page, capsys):
    page.goto(page.url.split("/dead-letters")[0] + "/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    with capsys.disabled():
        print(f"\ndashboard screenshot: {path}")


def test_serve_runs_the_dashboard_only_when_asked_and_only_on_loopback_from_the_flag(tmp_path):
    rules = '[[rule]]\nname = "all"\nto = ["team@example.com"]\n'
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(free_port(), rules), encoding="utf-8")
    listen = ["--listen", "127.0.0.1:0"]

    def healthy(receiver):
        # Once the receiver answers, its SIGTERM handler is in place.
        with urllib.request.urlopen(receiver + "/healthz", timeout=10) as answer:
            assert answer.status == 200

    # Off by default.
    herald = HeraldProcess(["-c", str(config), "serve", *listen], cwd=tmp_path)
    try:
        healthy(herald.wait_for_line("ready: "))
        assert not any("serve: dashboard" in line for line in herald.output), herald.output
    finally:
        assert herald.stop() == 0, "".join(herald.output)

    # On with the section; stopped by SIGTERM with the command.
    on = rules + '\n[dashboard]\nenabled = true\nlisten = "127.0.0.1:0"\n'
    config.write_text(smtp_config(free_port(), on), encoding="utf-8")
    herald = HeraldProcess(["-c", str(config), "serve", *listen], cwd=tmp_path)
    try:
        url = herald.wait_for_line("herald serve: dashboard ")
        healthy(herald.wait_for_line("ready: "))
        with urllib.request.urlopen(url + "/dead-letters", timeout=10) as page:
            assert page.status == 200
            assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert "no [dead_letter] section" in page.read().decode()
    finally:
        assert herald.stop() == 0, "".join(herald.output)

    # The flag refuses an address other machines can reach.
    refused = subprocess.run(
        [HERALD_BIN, "-c", str(config), "serve", *listen, "--dashboard", "0.0.0.0:0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert refused.returncode != 0
    assert "not a loopback address" in refused.stderr, refused.stderr
