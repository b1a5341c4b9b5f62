"""`herald dev` as a process, uploads through boto3, mail received by a real SMTP server.

Pins the core promise: each upload through a real S3 client becomes exactly one email with
the right recipients, the decoded file name in the decoded subject and the exact size.
"""

import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import dev_s3_client as s3_client, HeraldProcess, smtp_config

RULES = """
[[rule]]
name = "reports"
prefix = ["reports/", "archive/"]
to = ["Legal <legal@example.com>"]
cc = ["audit@example.com"]
bcc = ["records@example.com"]
subject = "New report: {{ object.name }}"
text = "{{ object.key }} is {{ object.size }} bytes"

[[rule]]
name = "with-link"
prefix = "shared/"
to = ["team@example.com"]
subject = "Shared: {{ object.name }}"
text = "{{ object.download_url }}"
download_link_secs = 600
stop = true

[[rule]]
name = "everything-else"
fallback = true
to = ["team@example.com"]
subject = "Upload: {{ object.name }}"
text = "{{ object.key }} is {{ object.size }} bytes"
"""

MIB = 1024 * 1024


@pytest.fixture
def dev(tmp_path, smtp_server):
    controller, recorder = smtp_server
    config = tmp_path / "herald.toml"
    config.write_text(smtp_config(controller.port, RULES), encoding="utf-8")
    herald = HeraldProcess(
        ["--config", str(config), "dev", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--bucket", "uploads"],
        cwd=tmp_path,
    )
    try:
        endpoint = herald.wait_for_line("ready: ")
        yield herald, endpoint, recorder
    finally:
        code = herald.stop()
        assert code == 0, "".join(herald.output)



def multipart_upload(s3, key, parts):
    upload = s3.create_multipart_upload(Bucket="uploads", Key=key, ContentType="text/csv")
    done = []
    for number, body in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket="uploads", Key=key, PartNumber=number, UploadId=upload["UploadId"], Body=body
        )
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket="uploads", Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )


def by_key(messages):
    """Indexes received messages by the object key their body names."""
    found = {}
    for received in messages:
        key = received.message.get_body(("plain",)).get_content().split(" is ")[0]
        assert key not in found, f"two emails for {key!r}"
        found[key] = received
    return found


def test_uploads_through_boto3_become_one_email_each(dev):
    herald, endpoint, recorder = dev
    s3 = s3_client(endpoint)
    report = b"%PDF-1.4\n" + b"q3 figures\n" * 300
    photo = bytes(range(256)) * 40
    s3.put_object(Bucket="uploads", Key="reports/Q3 report (final).pdf", Body=report,
                  ContentType="application/pdf")
    s3.put_object(Bucket="uploads", Key="photos/Café Zürich – 東京.jpg", Body=photo,
                  ContentType="image/jpeg")
    parts = [b"a" * (8 * MIB), b"b" * (8 * MIB), b"c" * (MIB + 123)]
    multipart_upload(s3, "datasets/export 2024.csv", parts)
    s3.copy_object(Bucket="uploads", Key="archive/Q3 report (final).pdf",
                   CopySource={"Bucket": "uploads", "Key": "reports/Q3 report (final).pdf"})

    messages = by_key(recorder.wait_for(4))
    assert sorted(messages) == sorted([
        "reports/Q3 report (final).pdf",
        "photos/Café Zürich – 東京.jpg",
        "datasets/export 2024.csv",
        "archive/Q3 report (final).pdf",
    ]), "".join(herald.output)

    expected = {
        "reports/Q3 report (final).pdf": ("New report: Q3 report (final).pdf", len(report)),
        "archive/Q3 report (final).pdf": ("New report: Q3 report (final).pdf", len(report)),
        "photos/Café Zürich – 東京.jpg": ("Upload: Café Zürich – 東京.jpg", len(photo)),
        "datasets/export 2024.csv": ("Upload: export 2024.csv", sum(map(len, parts))),
    }
    for key, (subject, size) in expected.items():
        message = messages[key].message
        assert message["subject"] == subject
        assert message.get_body(("plain",)).get_content().strip() == f"{key} is {size} bytes"

    legal = messages["reports/Q3 report (final).pdf"]
    assert sorted(legal.rcpt_tos) == ["audit@example.com", "legal@example.com",
                                      "records@example.com"]
    assert legal.message["to"] == "Legal <legal@example.com>"
    assert legal.message["bcc"] is None, "bcc must stay in the envelope"
    assert messages["datasets/export 2024.csv"].rcpt_tos == ["team@example.com"]
    assert legal.mail_from == "herald@example.com"


def test_non_ascii_subject_is_rfc2047_encoded_on_the_wire(dev):
    herald, endpoint, recorder = dev
    s3_client(endpoint).put_object(Bucket="uploads", Key="Ünïcödé 東京.txt", Body=b"x")
    [received] = recorder.wait_for(1)
    assert received.message["subject"] == "Upload: Ünïcödé 東京.txt"
    headers = received.raw.split(b"\r\n\r\n")[0]
    subject = [line for line in headers.split(b"\r\n") if line.lower().startswith(b"subject:")]
    assert subject and b"=?utf-8?" in subject[0].lower(), headers
    assert all(byte < 128 for byte in headers), "headers must be 7-bit on the wire"


def test_folder_placeholders_and_empty_objects_send_nothing(dev):
    herald, endpoint, recorder = dev
    s3 = s3_client(endpoint)
    s3.put_object(Bucket="uploads", Key="photos/2024/", Body=b"")
    s3.put_object(Bucket="uploads", Key="empty.txt", Body=b"")
    s3.put_object(Bucket="uploads", Key="last.txt", Body=b"1")
    messages = recorder.wait_for(1)
    assert [m.message["subject"] for m in messages] == ["Upload: last.txt"]
    herald.wait_for_line("upload: uploads/photos/2024/ (0 bytes): skipped")


def test_download_link_fetches_the_uploaded_bytes(dev):
    herald, endpoint, recorder = dev
    body = "contract text, signed\n".encode() * 50
    s3_client(endpoint).put_object(Bucket="uploads", Key="shared/Contract (v2)+final é.txt",
                                   Body=body)
    [received] = recorder.wait_for(1)
    link = received.message.get_body(("plain",)).get_content().strip()
    assert link.startswith(endpoint + "/uploads/shared/Contract%20%28v2%29%2Bfinal%20%C3%A9.txt?")
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == body
    tampered = link.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403


def test_unknown_bucket_and_unstorable_key_are_refused_like_s3(dev):
    herald, endpoint, recorder = dev
    s3 = s3_client(endpoint)
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket="no-such-bucket", Key="a.txt", Body=b"x")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ClientError) as too_long:
        s3.put_object(Bucket="uploads", Key="k" * 300, Body=b"x")
    assert too_long.value.response["Error"]["Code"] == "KeyTooLongError"
    assert "a key is limited to 161 bytes" in too_long.value.response["Error"]["Message"]
    assert "no-such-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket="uploads", Key="after.txt", Body=b"x")
    with pytest.raises(ClientError) as clash:
        s3.put_object(Bucket="uploads", Key="after.txt/child.txt", Body=b"x")
    assert clash.value.response["Error"]["Code"] == "InvalidRequest"
    assert '"after.txt" is an object' in clash.value.response["Error"]["Message"]
    assert [m.message["subject"] for m in recorder.wait_for(1)] == ["Upload: after.txt"]
