"""Shared pieces of the end-to-end tests: a real SMTP server, moto's AWS server and herald as
a process.

The SMTP server is aiosmtpd on loopback; it keeps every message it accepts so tests can
assert on what a mail server actually received. moto's server mode stands in for S3, SQS,
SES v2 and DynamoDB on loopback. Herald runs as the built binary (HERALD_BIN, set by
scripts/test).
"""

import email
import email.policy
import json
import os
import queue
import socket
import subprocess
import threading
import sys
import time
import urllib.request
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

    def __init__(self, args, cwd, env=None):
        self.lines = queue.Queue()
        self.output = []
        self.proc = subprocess.Popen(
            [HERALD_BIN, *args],
            cwd=cwd,
            env=env,
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

    def wait_for_text(self, text, timeout=60.0):
        """Waits until some output line contains `text`; returns that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.output) if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"herald never printed {text!r}; output:\n{''.join(self.output)}")

    def stop(self, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("herald did not stop within 20 s of SIGTERM")


def dev_s3_client(endpoint):
    """boto3 pointed at a `herald dev` endpoint: path-style, the fixed dev keys, no retries
    (a test must see each answer the endpoint gives)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="herald-dev",
        aws_secret_access_key="herald-dev-secret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def smtp_config(port, rules):
    """A config delivering to the test SMTP server in plain text on loopback."""
    return (
        "[sender]\n"
        'type = "smtp"\n'
        f'url = "smtp://127.0.0.1:{port}"\n'
        'tls = "none"\n'
        'from = "Herald Test <herald@example.com>"\n\n' + rules
    )


@dataclass
class Moto:
    """moto's server on loopback, and how to point AWS clients at it."""

    endpoint: str
    region: str = "us-east-1"

    def client(self, service):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def env(self, tmp_path):
        """Environment for herald: moto's endpoint and fake credentials, nothing from the
        machine's own AWS config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        empty = tmp_path / "empty-aws-config"
        empty.write_text("", encoding="utf-8")
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_REGION=self.region,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_CONFIG_FILE=str(empty),
            AWS_SHARED_CREDENTIALS_FILE=str(empty),
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def data(self):
        """Everything moto holds, as its /moto-api/data.json reports it."""
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=10) as r:
            return json.load(r)

    def reset(self):
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto server for the session, started from this Python's environment."""
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto_server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def moto(moto_endpoint):
    """moto with no state left over from other tests."""
    server = Moto(moto_endpoint)
    server.reset()
    return server
