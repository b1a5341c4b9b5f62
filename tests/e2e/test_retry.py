"""Retries against a real SMTP server: aiosmtpd answering with the codes real servers use.

A 451 (greylisting, a busy queue) is worth another try; a 550 (no such mailbox) is not. The
server counts the attempts per Message-ID, so the test sees what Herald really did on the wire.
"""

import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conftest import HERALD_BIN, free_port, smtp_config

PUT_EVENT = Path(__file__).resolve().parents[1] / "fixtures" / "s3" / "put.json"

RULES = """
max_attempts = 4
retry_max_secs = 30

[[rule]]
name = "everything"
to = ["ops@example.com"]
"""


class Scripted:
    """Answers DATA with the scripted replies for each new attempt of a message, then 250."""

    def __init__(self, replies):
        self.replies = replies
        self.attempts = Counter()
        self.accepted = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message_id = envelope.original_content.split(b"Message-ID:", 1)[1].split(b"\r\n")[0]
        with self.lock:
            seen = self.attempts[message_id]
            self.attempts[message_id] += 1
            if seen < len(self.replies):
                return self.replies[seen]
            self.accepted.append(message_id)
            return "250 OK"


@pytest.fixture
def scripted_smtp(request):
    handler = Scripted(request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def invoke(tmp_path, port):
    config = tmp_path / "herald.toml"
    # The shared [sender] fields go straight after the type's own, before the rules.
    config.write_text(smtp_config(port, RULES))
    return subprocess.run(
        [HERALD_BIN, "--config", str(config), "invoke", str(PUT_EVENT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("scripted_smtp", [["451 4.7.1 greylisted, try again later"] * 2],
                         indirect=True)
def test_greylisted_message_is_delivered_once_on_the_third_attempt(tmp_path, scripted_smtp):
    port, server = scripted_smtp
    result = invoke(tmp_path, port)

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.attempts) == 1
    assert list(server.attempts.values()) == [3]
    assert len(server.accepted) == 1
    assert "delivery failed, retrying" in result.stderr + result.stdout


@pytest.mark.parametrize("scripted_smtp", [["550 5.1.1 no such mailbox"] * 4], indirect=True)
def test_rejected_message_is_not_retried(tmp_path, scripted_smtp):
    port, server = scripted_smtp
    result = invoke(tmp_path, port)

    assert result.returncode != 0, result.stdout + result.stderr
    assert list(server.attempts.values()) == [1]
    assert server.accepted == []
    assert "(1 attempt made)" in result.stderr + result.stdout
