"""Shared pieces of the end-to-end tests: a real SMTP server and herald as a process.

The SMTP server is aiosmtpd on loopback; it keeps every message it accepts so tests can
assert on what a mail server actually received. Herald runs as the built binary
(HERALD_BIN, set by scripts/test).
"""

import email
import email.policy
import os
import queue
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

HERALD_BIN = os.environ.get(
    "HERALD_BIN", str(Path(__file__).resolve().parents[2] / "target" / "debug" / "herald")
)


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list
    message: email.message.EmailMessage
    raw: bytes


@dataclass
class Recorder:
    """aiosmtpd handler that keeps every accepted message."""

    messages: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), parsed,
                         envelope.original_content)
            )
        return "250 OK"

    def wait_for(self, count, timeout=30.0):
        """Waits until `count` messages arrived, then a moment more to catch extras."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.05)
        time.sleep(1.0)
        with self.lock:
            return list(self.messages)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, recorder
    finally:
        controller.stop()


class HeraldProcess:
    """herald running as a child process, its stdout collected line by line."""

    def __init__(self, args, cwd):
        self.lines = queue.Queue()
        self.output = []
        self.proc = subprocess.Popen(
            [HERALD_BIN, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, prefix, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"herald never printed {prefix!r}; output:\n{''.join(self.output)}")

    def stop(self, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("herald did not stop within 20 s of SIGTERM")


def smtp_config(port, rules):
    """A config delivering to the test SMTP server in plain text on loopback."""
    return (
        "[sender]\n"
        'type = "smtp"\n'
        f'url = "smtp://127.0.0.1:{port}"\n'
        'tls = "none"\n'
        'from = "Herald Test <herald@example.com>"\n\n' + rules
    )
