"""The Lambda `bootstrap` binary as a process, against a local Runtime API and a real SMTP server.

Pins what Lambda relies on: one answer per invocation in the documented protocol, partial batch
responses naming exactly the SQS messages a retry can help, an error (so Lambda retries) only
for transient failures, and JSON logs carrying the request id.
"""

import copy
import json

import pytest
from aiosmtpd.controller import Controller

from conftest import Recorder, free_port, smtp_config
from lambda_api import Bootstrap, RuntimeApi, fixture

RULES = """
[[rule]]
name = "greylisted"
prefix = "greylisted/"
to = ["greylisted@example.com"]
stop = true

[[rule]]
name = "everything"
fallback = true
to = ["team@example.com"]
subject = "Upload: {{ object.name }}"
text = "{{ object.bucket }}/{{ object.key }} is {{ object.size }} bytes"
html = ""
"""

GREYLISTED = "greylisted@example.com"


class Greylisting(Recorder):
    """Keeps accepted messages; answers 451 to one recipient, as a greylisting server does."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == GREYLISTED:
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def smtp():
    recorder = Greylisting()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, recorder
    finally:
        controller.stop()


@pytest.fixture
def function(tmp_path, smtp):
    controller, recorder = smtp
    (tmp_path / "herald.toml").write_text(smtp_config(controller.port, RULES), encoding="utf-8")
    api = RuntimeApi()
    bootstrap = Bootstrap(api, tmp_path)
    try:
        yield api, bootstrap, recorder
    finally:
        bootstrap.stop()
        api.stop()


def s3_event(key):
    event = fixture("s3/put.json")
    event["Records"][0]["s3"]["object"]["key"] = key
    return event


def sqs_batch(messages):
    template = fixture("sqs/s3_body.json")["Records"][0]
    records = []
    for message_id, body in messages:
        record = copy.deepcopy(template)
        record.update(messageId=message_id, body=json.dumps(body))
        records.append(record)
    return {"Records": records}


def test_fixture_events_get_one_answer_each(function):
    api, bootstrap, recorder = function
    answers = [
        api.invoke(fixture(path))
        for path in ["s3/put.json", "sns/lambda_event.json", "eventbridge/object_created.json",
                     "sqs/mixed.json", "eventbridge/object_deleted.json"]
    ]
    request_id, unknown = api.invoke({"hello": "world"})
    answers.append((request_id, unknown))
    output = "".join(bootstrap.output)

    kinds = [kind for _, (kind, _) in answers]
    assert kinds == ["response"] * 6, output
    bodies = [body for _, (_, body) in answers]
    for body in bodies[:3]:
        assert (body["counts"]["sent"], body["counts"]["failed"]) == (1, 0), output
    # The SQS batch: an upload already sent via SNS (deduplicated), an S3 test event inside SNS,
    # someone else's JSON and a body that is not JSON. None is worth a redelivery.
    assert bodies[3] == {"batchItemFailures": []}
    assert (bodies[4]["counts"]["ignored"], bodies[4]["counts"]["sent"]) == (1, 0)
    assert "unrecognized" in bodies[5]

    received = recorder.wait_for(3)
    texts = sorted(m.message.get_body(("plain",)).get_content().strip() for m in received)
    assert texts == [
        "acme-media/videos/Launch day+final cut.mp4 is 2400000000 bytes",
        "acme-uploads/invoices/2024/INV-0042.pdf is 48213 bytes",
        "acme-uploads/reports/Q3 summary.pdf is 73406 bytes",
    ]

    records = bootstrap.log_records()
    assert not any("timestamp" in record for record in records), "the platform adds timestamps"
    spans = {record.get("span", {}).get("request_id") for record in records}
    assert {request_id for request_id, _ in answers} <= spans, output


def test_sqs_batch_names_only_the_greylisted_message(function):
    api, bootstrap, recorder = function
    batch = sqs_batch([
        ("11111111-aaaa-4bbb-8ccc-000000000001", s3_event("inbox/first.csv")),
        ("22222222-aaaa-4bbb-8ccc-000000000002", s3_event("greylisted/second.csv")),
        ("33333333-aaaa-4bbb-8ccc-000000000003", s3_event("inbox/third.csv")),
    ])
    _, (kind, body) = api.invoke(batch)
    assert kind == "response", "".join(bootstrap.output)
    assert body == {"batchItemFailures": [{"itemIdentifier": "22222222-aaaa-4bbb-8ccc-000000000002"}]}

    received = recorder.wait_for(2)
    assert sorted(m.message["subject"] for m in received) == ["Upload: first.csv",
                                                              "Upload: third.csv"]
    assert all(m.rcpt_tos == ["team@example.com"] for m in received)


def test_transient_failure_of_a_direct_event_is_an_invocation_error(function):
    api, bootstrap, recorder = function
    _, (kind, body) = api.invoke(s3_event("greylisted/report.pdf"))
    assert kind == "error", "".join(bootstrap.output)
    assert body["errorType"] == "Herald.Undelivered"
    assert body["errorMessage"] == (
        "1 notification(s) not delivered; the event is retried, then dead-lettered")


def test_missing_config_stops_the_container_at_init(tmp_path):
    api = RuntimeApi()
    bootstrap = Bootstrap(api, tmp_path)
    try:
        assert bootstrap.proc.wait(timeout=20) != 0
        messages = [record.get("message") for record in bootstrap.log_records()]
        assert "herald cannot start" in messages
    finally:
        bootstrap.stop()
        api.stop()
