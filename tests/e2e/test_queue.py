"""The durable event queue (`[queue]`) under faults, against real processes and aiosmtpd.

What an acknowledged upload is promised: it is notified exactly once, whether the mail server
goes away for a while, or Herald itself is killed and started again. Every test counts what
the SMTP server accepted by Message-ID.
"""

import asyncio
import copy
import json
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config
from aiosmtpd.controller import Controller

from conftest import dev_s3_client as s3_client, HeraldProcess, Recorder, free_port, smtp_config

from test_serve import post

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

QUEUED = """
max_attempts = 2
retry_max_secs = 1

[dedupe]
type = "local"
path = "state/herald.redb"

[queue]
path = "state/herald.redb"
concurrency = 4
retry_max_secs = 2
drain_secs = 2

[[rule]]
name = "uploads"
to = ["team@example.com"]
subject = "Upload: {{ object.key }}"
"""


class Gate(Recorder):
    """A Recorder whose DATA replies can be held back: while the gate is shut, each message
    waits before it is accepted. A message whose client went away while it waited is never
    accepted (aiosmtpd cancels its handler), as a real server drops an unfinished transaction."""

    def __init__(self):
        super().__init__()
        self.open = threading.Event()
        self.open.set()
        self.waiting = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.waiting += 1
        try:
            while not self.open.is_set():
                await asyncio.sleep(0.01)
        finally:
            with self.lock:
                self.waiting -= 1
        return await super().handle_DATA(server, session, envelope)

    def message_ids(self):
        with self.lock:
            return Counter(m.message["Message-ID"] for m in self.messages)

    def subjects(self):
        with self.lock:
            return Counter(m.message["Subject"] for m in self.messages)


def smtp(handler, port=None):
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return controller


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def write_config(tmp_path, port):
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(port, QUEUED), encoding="utf-8")
    return config



def test_smtp_down_for_10_s_in_the_middle_of_200_uploads_loses_and_repeats_nothing(tmp_path):
    recorder = Gate()
    controller = smtp(recorder)
    port = controller.port
    config = write_config(tmp_path, port)
    herald = HeraldProcess(
        ["--config", str(config), "dev", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
    )
    try:
        s3 = s3_client(herald.wait_for_line("ready: "))
        keys = [f"batch/file {n:03}.txt" for n in range(200)]
        upload = lambda key: s3.put_object(Bucket="uploads", Key=key, Body=key.encode())
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(upload, keys[:100]))
            # The server goes away; S3 still answers every upload, since each is queued.
            controller.stop()
            down_at = time.monotonic()
            list(pool.map(upload, keys[100:]))
        time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        controller = smtp(recorder, port)

        wait_until(lambda: len(recorder.message_ids()) >= 200, 120, "200 distinct emails")
        time.sleep(3)  # anything sent twice would arrive by now
        subjects = recorder.subjects()
        assert sorted(subjects) == sorted(f"Upload: {key}" for key in keys)
        assert set(recorder.message_ids().values()) == {1}
        assert set(subjects.values()) == {1}
    finally:
        assert herald.stop() == 0, "".join(herald.output)
        controller.stop()


def minio_event(n):
    """One MinIO webhook body for upload number `n`, its own key, ETag and sequencer."""
    body = json.loads((FIXTURES / "minio" / "put.json").read_text(encoding="utf-8"))
    key = f"burst/file-{n:04}.bin"
    body["Key"] = f"media-inbox/{key}"
    record = copy.deepcopy(body["Records"][0])
    record["s3"]["object"]["key"] = key.replace("/", "%2F")
    record["s3"]["object"]["eTag"] = f"{n:032x}"
    record["s3"]["object"]["sequencer"] = f"{n:016X}"
    body["Records"] = [record]
    return key, json.dumps(body)


def serve(tmp_path, config):
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    herald = HeraldProcess(["-c", str(config), "serve", "--listen", "127.0.0.1:0"],
                           cwd=tmp_path, env=env)
    return herald, herald.wait_for_line("ready: ")


def test_serve_killed_during_a_burst_notifies_every_acknowledged_upload_exactly_once(tmp_path):
    recorder = Gate()
    controller = smtp(recorder)
    config = write_config(tmp_path, controller.port)
    herald, url = serve(tmp_path, config)
    acknowledged, stop_posting = [], threading.Event()

    def burst():
        for n in range(400):
            if stop_posting.is_set():
                return
            key, body = minio_event(n)
            try:
                status, _, _ = post(f"{url}/minio", body)
            except OSError:
                continue  # herald was killed under this request: not acknowledged
            if status == 200:
                acknowledged.append(key)

    poster = threading.Thread(target=burst)
    try:
        poster.start()
        wait_until(lambda: len(recorder.message_ids()) >= 20, 60, "the first 20 emails")
        # Hold every delivery slot at the server, so the kill finds sends in flight but none
        # between the server's 250 and Herald recording it (a window no protocol closes).
        recorder.open.clear()
        wait_until(lambda: recorder.waiting == 4 and len(acknowledged) >= 60, 60,
                   "four sends held at the server and 60 uploads acknowledged")
        herald.proc.send_signal(signal.SIGKILL)
        herald.proc.wait(timeout=10)
        stop_posting.set()
        poster.join(timeout=60)
        recorder.open.set()
        assert len(recorder.message_ids()) < len(acknowledged), "the kill came too late"

        herald, url = serve(tmp_path, config)
        expected = {f"Upload: {key}" for key in acknowledged}
        wait_until(lambda: expected <= set(recorder.subjects()), 120,
                   f"emails for all {len(expected)} acknowledged uploads")
        time.sleep(3)
        subjects = recorder.subjects()
        assert set(recorder.message_ids().values()) == {1}, recorder.message_ids()
        assert set(subjects.values()) == {1}
        # Uploads posted but cut off by the kill may have been stored before it: those are
        # delivered too, once; nothing arrives that was never posted.
        assert set(subjects) <= {f"Upload: burst/file-{n:04}.bin" for n in range(400)}
    finally:
        stop_posting.set()
        recorder.open.set()
        assert herald.stop() == 0, "".join(herald.output)
        controller.stop()


def test_sigterm_waits_a_bounded_time_and_the_next_start_delivers_the_rest(tmp_path):
    recorder = Gate()
    recorder.open.clear()
    controller = smtp(recorder)
    config = write_config(tmp_path, controller.port)
    herald, url = serve(tmp_path, config)
    try:
        keys = []
        for n in range(10):
            key, body = minio_event(n)
            assert post(f"{url}/minio", body)[0] == 200
            keys.append(key)
        wait_until(lambda: recorder.waiting == 4, 30, "four sends held at the server")

        started = time.monotonic()
        assert herald.stop() == 0, "".join(herald.output)
        # drain_secs = 2, plus start-up and exit: well under the 20 s a hung drain would take.
        assert time.monotonic() - started < 15
        assert "stay queued for the next start" in "".join(herald.output), "".join(herald.output)
        recorder.open.set()
        assert recorder.message_ids() == Counter()

        herald, url = serve(tmp_path, config)
        expected = {f"Upload: {key}" for key in keys}
        wait_until(lambda: expected <= set(recorder.subjects()), 60, "all ten emails")
        time.sleep(2)
        assert set(recorder.subjects().values()) == {1}
    finally:
        recorder.open.set()
        assert herald.stop() == 0, "".join(herald.output)
        controller.stop()
