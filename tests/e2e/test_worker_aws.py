"""`herald worker` as a process against moto: S3 notifications into SQS, SES v2, DynamoDB.

Pins the container path end to end: uploads through boto3 reach the queue as S3 event
notifications, the worker sends one SES email per upload with every recipient and both body
parts, deletes what it settled, sends a redelivered event only once, and reports an
unverified sender once instead of retrying it in a hot loop.
"""

import email
import email.policy
import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HeraldProcess

SENDER = "herald@example.com"
TABLE = "herald-dedupe"
BUCKET = "legal-docs"

CONFIG = f"""
[sender]
type = "ses"
from = "Herald Test <{SENDER}>"

[dedupe]
type = "dynamodb"
table = "{TABLE}"

[[rule]]
name = "contracts"
to = ["Legal <legal@example.com>"]
cc = ["audit@example.com"]
bcc = ["records@example.com"]
subject = "New contract: {{{{ object.name }}}}"
download_link_secs = 3600
"""

RECIPIENTS = {"legal@example.com", "audit@example.com", "records@example.com"}

UPLOADS = {
    "contracts/Q3 report (final).pdf": b"%PDF-1.7 q3" * 10,
    "contracts/2024/Überblick.docx": b"PK docx" * 20,
    "contracts/a+b.pdf": b"%PDF-1.7 ab" * 30,
}

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "s3" / "put.json"


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def setup_aws(moto, verify_sender=True, visibility=30):
    """Bucket notifying a queue, the SES identity, the dedupe table; returns the queue URL."""
    sqs, s3 = moto.client("sqs"), moto.client("s3")
    attributes = {"VisibilityTimeout": str(visibility)}
    queue_url = sqs.create_queue(QueueName="uploads", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    if verify_sender:
        moto.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    moto.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return queue_url


def sent_emails(moto):
    """What SES v2 accepted, as moto records it: (destinations, parsed message) pairs."""
    raw = moto.data().get("ses", {}).get("RawMessage", [])
    return [
        (m["destinations"], email.message_from_string(m["raw_data"], policy=email.policy.default))
        for m in raw
    ]


def assert_download_link_serves(text, name):
    """The email's presigned link, signed by the worker, fetches the uploaded bytes from S3."""
    [link] = re.findall(r"^Download: +(\S+)", text, flags=re.M)
    [key] = [key for key in UPLOADS if key.endswith("/" + name)]
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == UPLOADS[key], link


def queue_counts(moto, queue_url):
    attrs = moto.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    )


def start_worker(moto, tmp_path, queue_url):
    config = tmp_path / "herald.toml"
    config.write_text(CONFIG, encoding="utf-8")
    herald = HeraldProcess(
        ["--config", str(config), "worker", "--queue-url", queue_url, "--drain-secs", "10"],
        cwd=tmp_path,
        env=moto.env(tmp_path),
    )
    herald.wait_for_line("ready: polling ")
    return herald


@pytest.fixture
def worker_factory(moto, tmp_path):
    started = []

    def start(queue_url):
        herald = start_worker(moto, tmp_path, queue_url)
        started.append(herald)
        return herald

    yield start
    for herald in started:
        code = herald.stop()
        assert code == 0, "".join(herald.output)


def test_uploads_become_one_ses_email_each_and_the_queue_drains(moto, worker_factory):
    queue_url = setup_aws(moto)
    herald = worker_factory(queue_url)
    s3 = moto.client("s3")
    for key, body in UPLOADS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    sent = wait_until(lambda: len(sent_emails(moto)) >= 3 and sent_emails(moto), what="3 emails")
    time.sleep(1.0)
    sent = sent_emails(moto)
    assert len(sent) == 3, sent
    subjects = set()
    for destinations, message in sent:
        assert RECIPIENTS <= {d.split("<")[-1].rstrip(">") for d in destinations}
        assert message["From"] == f"Herald Test <{SENDER}>"
        assert "records@example.com" not in str(message), "bcc must stay out of the headers"
        name = message["Subject"].removeprefix("New contract: ")
        subjects.add(name)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert name in text and name.replace("&", "&amp;") in html
        assert message["X-Herald-Rule"] == "contracts"
        assert_download_link_serves(text, name)
    assert subjects == {key.rsplit("/", 1)[1] for key in UPLOADS}

    # The test event and the three uploads are all settled and deleted.
    wait_until(lambda: queue_counts(moto, queue_url) == (0, 0), what="an empty queue")
    assert herald.proc.poll() is None


def test_the_same_message_twice_sends_one_email(moto, worker_factory):
    # Both copies may arrive in one batch: the second then finds the first's claim, is left
    # for redelivery, and on its return finds the email sent. A short visibility timeout
    # keeps that return quick.
    queue_url = setup_aws(moto, visibility=2)
    body = FIXTURE.read_text(encoding="utf-8")
    sqs = moto.client("sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    worker_factory(queue_url)

    wait_until(lambda: queue_counts(moto, queue_url) == (0, 0), what="an empty queue")
    time.sleep(1.0)
    assert len(sent_emails(moto)) == 1
    items = moto.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert [item["state"]["S"] for item in items] == ["done"]
    assert int(items[0]["expires_at"]["N"]) > time.time() + 6 * 24 * 3600


def test_unverified_sender_is_one_clear_error_and_not_retried_hot(moto, worker_factory):
    queue_url = setup_aws(moto, verify_sender=False)
    herald = worker_factory(queue_url)
    moto.client("s3").put_object(Bucket=BUCKET, Key="contracts/x.pdf", Body=b"%PDF")

    needle = f"sender address {SENDER} is not verified in SES"
    line = herald.wait_for_text(needle)
    assert "ERROR" in line and "verify it" in line, line
    # Within the queue's 30 s visibility timeout nothing tries again: the message waits,
    # hidden, for redelivery and finally the redrive policy.
    time.sleep(4.0)
    assert sum(needle in line for line in herald.output) == 1, "".join(herald.output)
    assert queue_counts(moto, queue_url) == (0, 1)
    assert sent_emails(moto) == []
    assert any("dead-letter queue" in line for line in herald.output), "".join(herald.output)
