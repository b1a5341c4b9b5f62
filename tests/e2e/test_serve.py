"""`herald serve` as a process: events pushed over real HTTP, emails received by aiosmtpd.

Pins the push path end to end: Eventarc's binary and structured CloudEvents, a Pub/Sub push,
Event Grid's validation handshake and blob events, MinIO webhooks with and without the right
token each become the emails a real SMTP server receives (recipients, decoded subject, exact
size); redeliveries send nothing twice; PORT picks the address as on Cloud Run; SIGTERM lets
a request in flight finish and exits 0.
"""

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conftest import HeraldProcess, Recorder, free_port, smtp_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "Bearer e2e-minio-token"

RULES = """
[serve]
body_limit_bytes = 65536
minio_token_env = "HERALD_E2E_MINIO_TOKEN"

[[rule]]
name = "uploads"
to = ["Team <team@example.com>"]
cc = ["audit@example.com"]
subject = "Upload: {{ object.name }} ({{ object.size }} bytes)"
"""


def fixture(path):
    return (FIXTURES / path).read_text(encoding="utf-8")


def post(url, body, headers=None, method="POST"):
    """Sends a request; returns (status, headers, body text) whatever the status."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode("utf-8")


def start(tmp_path, smtp_port, args=("--listen", "127.0.0.1:0"), env_extra=None):
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(smtp_port, RULES), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    env["HERALD_E2E_MINIO_TOKEN"] = TOKEN
    env.update(env_extra or {})
    herald = HeraldProcess(["-c", str(config), "serve", *args], cwd=tmp_path, env=env)
    url = herald.wait_for_line("ready: ")
    return herald, url


@pytest.fixture
def serve(smtp_server, tmp_path):
    controller, recorder = smtp_server
    herald, url = start(tmp_path, controller.port)
    try:
        yield url, recorder
    finally:
        assert herald.stop() == 0, "".join(herald.output)


def binary_cloudevent(url, object_json, kind="google.cloud.storage.object.v1.finalized"):
    headers = {
        "ce-id": "11863129744211254",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/acme-archive",
        "ce-specversion": "1.0",
        "ce-type": kind,
        "ce-subject": "objects/exports/2024/Q3 full dump (final).tar",
        "ce-time": "2024-06-03T16:02:45.001Z",
    }
    return post(f"{url}/cloudevents", object_json, headers)


def by_subject(messages):
    return {m.message["Subject"]: m for m in messages}


def test_each_push_protocol_becomes_one_email(serve):
    url, recorder = serve

    status, _, body = binary_cloudevent(url, fixture("gcs/object_finalized.json"))
    assert (status, json.loads(body)["sent"]) == (200, 1), body
    structured = fixture("gcs/cloudevent_structured.json")
    ce_json = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert post(f"{url}/cloudevents", structured, ce_json)[0] == 200
    assert post(f"{url}/pubsub", fixture("gcs/pubsub_finalize.json"))[0] == 200
    assert post(f"{url}/eventgrid", fixture("azure/blob_created_put_blob.json"))[0] == 200
    status, _, body = post(f"{url}/eventgrid", fixture("azure/data_lake_create_then_flush.json"))
    assert (status, json.loads(body)["ignored"], json.loads(body)["sent"]) == (200, 1, 1)
    minio = fixture("minio/put.json")
    assert post(f"{url}/minio", minio, {"Authorization": TOKEN})[0] == 200

    messages = recorder.wait_for(6)
    assert len(messages) == 6
    got = by_subject(messages)
    assert set(got) == {
        "Upload: Q3 full dump (final).tar (5368709120 bytes)",
        "Upload: Lieferschein März.pdf (482133 bytes)",
        "Upload: INV-2024-0042+copy.pdf (73421 bytes)",
        "Upload: Vertrag Müller & Söhne (signed).pdf (2097152 bytes)",
        "Upload: batch-0007.parquet (6442450944 bytes)",
        "Upload: holiday photo.jpg (3145728 bytes)",
    }
    for message in messages:
        assert set(message.rcpt_tos) == {"team@example.com", "audit@example.com"}
        assert message.message["To"] == "Team <team@example.com>"
    # The non-ASCII subject travelled RFC 2047 encoded, not as raw UTF-8.
    raw = got["Upload: Lieferschein März.pdf (482133 bytes)"].raw
    assert b"M\xc3\xa4rz" not in raw.split(b"\r\n\r\n", 1)[0]


def test_handshakes_and_refusals_send_nothing(serve):
    url, recorder = serve

    status, headers, body = post(f"{url}/eventgrid", fixture("azure/subscription_validation.json"))
    assert status == 200
    assert body == '{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}'
    assert headers["Content-Type"] == "application/json"
    status, headers, _ = post(
        f"{url}/eventgrid", None, {"WebHook-Request-Origin": "eventgrid.azure.net"}, "OPTIONS"
    )
    assert (status, headers["WebHook-Allowed-Origin"]) == (200, "eventgrid.azure.net")

    minio = fixture("minio/put.json")
    assert post(f"{url}/minio", minio)[0] == 401
    assert post(f"{url}/minio", minio, {"Authorization": "Bearer guess"})[0] == 401
    status, _, body = post(f"{url}/pubsub", "{not json")
    assert status == 400 and "not valid JSON" in body
    assert post(f"{url}/eventgrid", "[" + " " * 70000 + "]")[0] == 413
    deleted = "google.cloud.storage.object.v1.deleted"
    status, _, body = binary_cloudevent(url, fixture("gcs/object_finalized.json"), deleted)
    assert (status, json.loads(body)["ignored"]) == (200, 1)
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
        assert (response.status, response.read()) == (200, b"ok")

    assert recorder.wait_for(1, timeout=2) == []


def test_redeliveries_send_once_and_an_overwrite_again(serve):
    url, recorder = serve
    resource = fixture("gcs/object_finalized.json")
    for _ in range(3):
        assert binary_cloudevent(url, resource)[0] == 200
    newer = json.loads(resource)
    newer["generation"] = "1717430999000001"
    newer["size"] = "4294967297"
    status, _, body = binary_cloudevent(url, json.dumps(newer))
    assert (status, json.loads(body)["sent"]) == (200, 1)
    messages = recorder.wait_for(2)
    assert sorted(m.message["Subject"] for m in messages) == [
        "Upload: Q3 full dump (final).tar (4294967297 bytes)",
        "Upload: Q3 full dump (final).tar (5368709120 bytes)",
    ]


def test_port_variable_listens_on_every_interface(smtp_server, tmp_path):
    controller, recorder = smtp_server
    port = free_port()
    herald, url = start(tmp_path, controller.port, args=(), env_extra={"PORT": str(port)})
    try:
        assert url == f"http://0.0.0.0:{port}"
        local = f"http://127.0.0.1:{port}"
        assert post(f"{local}/pubsub", fixture("gcs/pubsub_finalize.json"))[0] == 200
        assert len(recorder.wait_for(1)) == 1
    finally:
        assert herald.stop() == 0, "".join(herald.output)


class SlowRecorder(Recorder):
    """Holds each message a while before accepting it, so a request stays in flight."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.started.set()
        await asyncio.sleep(2.0)
        return await super().handle_DATA(server, session, envelope)


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path):
    recorder = SlowRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        herald, url = start(tmp_path, controller.port)
        answers = []
        request = threading.Thread(
            target=lambda: answers.append(post(f"{url}/pubsub", fixture("gcs/pubsub_finalize.json")))
        )
        request.start()
        assert recorder.started.wait(timeout=30), "the email never reached the SMTP server"
        herald.proc.terminate()
        request.join(timeout=30)
        assert answers and answers[0][0] == 200, answers
        assert herald.proc.wait(timeout=20) == 0
        assert herald.wait_for_text("stopped")
        assert len(recorder.messages) == 1
        # Stopped means stopped: nothing listens any more.
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
    finally:
        controller.stop()
