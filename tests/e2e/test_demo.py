"""`herald demo`, the README's first command: its emails must open in a mail client.

Python's email package stands in for the mail client: it parses each .eml the way a
standards-following reader does, decoding RFC 2047 subjects and MIME parts.
"""

import email
import email.policy
import os
import pty
import select
import subprocess
from pathlib import Path

from conftest import HERALD_BIN

EXPECTED_SUBJECTS = sorted([
    "New report: Q3 report (final).pdf (440 B)",
    "New report: Q3 report (final).pdf (440 B)",
    "New file in demo-uploads: Café Zürich – 東京.jpg",
    "New file in demo-uploads: a+b = c.txt",
    "New file in demo-uploads: export-2024.csv",
])


def test_demo_writes_emails_a_mail_client_can_open(tmp_path):
    outbox = tmp_path / "outbox"
    result = subprocess.run(
        [HERALD_BIN, "demo", "--outbox", str(outbox)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"5 email(s) delivered to outbox {outbox}" in result.stdout

    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 5, [f.name for f in outbox.iterdir()]
    messages = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                for f in files]
    assert sorted(m["subject"] for m in messages) == EXPECTED_SUBJECTS
    for message in messages:
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "Size:" in text and "bytes" in text, text
        assert html.lstrip().startswith("<!DOCTYPE html>"), html[:80]
    big = next(m for m in messages if "export-2024.csv" in m["subject"])
    assert "(17,825,821 bytes)" in big.get_body(("plain",)).get_content()


def on_a_terminal(command, cwd, env, stdout=None):
    """Runs `command` with a pseudo-terminal as its standard error (and standard output, unless
    `stdout` says otherwise); returns its exit code and everything it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, cwd=cwd, env=env,
                            stdout=follower if stdout is None else stdout, stderr=follower)
    os.close(follower)
    seen = b""
    while select.select([leader], [], [], 180)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen


def test_progress_shows_on_a_terminal_and_stays_out_of_pipes(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm"}
    piped = subprocess.run(
        [HERALD_BIN, "demo", "--outbox", str(tmp_path / "piped")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env,
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "uploads handled" not in piped.stdout + piped.stderr

    # The same command with a terminal as its standard error, as a person would run it.
    code, seen = on_a_terminal(
        [HERALD_BIN, "demo", "--outbox", str(tmp_path / "tty")], tmp_path, env,
        stdout=subprocess.DEVNULL,
    )
    assert code == 0, seen.decode(errors="replace")
    assert b"uploads handled" in seen, seen.decode(errors="replace")


def test_dlq_replay_all_shows_progress_on_a_terminal_only(tmp_path):
    put = Path(__file__).resolve().parents[1] / "fixtures" / "s3" / "put.json"
    base = (
        '[sender]\ntype = "outbox"\nfrom = "h@example.com"\ndir = "outbox"\n'
        '[dead_letter]\npath = "state.redb"\n'
        '[[rule]]\nname = "all"\nto = ["a@example.com"]\n'
    )
    # Divides by zero only for the fixture's 48213-byte object: `herald check`'s trial render
    # passes, the real one fails for good and is parked.
    (tmp_path / "broken.toml").write_text(
        base + 'subject = "{{ 1 // (object.size - 48213) }}"\n', encoding="utf-8")
    (tmp_path / "fixed.toml").write_text(base, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm"}
    herald = lambda config, *args: [HERALD_BIN, "--config", str(tmp_path / config), *args]
    parked = subprocess.run(herald("broken.toml", "invoke", str(put)), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=env)
    assert "parked as" in parked.stdout, parked.stdout + parked.stderr

    code, seen = on_a_terminal(herald("fixed.toml", "dlq", "replay", "--all"), tmp_path, env)
    assert code == 0, seen.decode(errors="replace")
    assert b"replaying" in seen and b"1 delivered" in seen, seen.decode(errors="replace")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
