"""The usual S3-upload-to-email function, written the way the common tutorials write it.

This is a baseline that Herald's benchmarks measure against; it is not part of Herald. It does
what a typical tutorial handler does and nothing more: read the bucket and key from each S3
record, unquote the key, format a short message and send it, by SMTP (smtplib) or by SES
(boto3). No routing rules, no templates, no HTML part, no dedupe, no retries.

Settings come from environment variables, as a Lambda function's would:
REFERENCE_SENDER ("smtp" or "ses"), SMTP_HOST, SMTP_PORT, MAIL_FROM, MAIL_TO.

Run as a script it handles one event file: `python handler.py event.json`.
"""

import json
import os
import smtplib
import sys
import urllib.parse
from email.message import EmailMessage

SENDER = os.environ.get("REFERENCE_SENDER", "smtp")
SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "25"))
MAIL_FROM = os.environ.get("MAIL_FROM", "uploads@example.com")
MAIL_TO = os.environ.get("MAIL_TO", "team@example.com")

# Tutorials create the SES client at import time so warm invocations reuse it. It is only
# created for the SES variant, so the SMTP variant does not pay for importing boto3.
if SENDER == "ses":
    import boto3

    ses = boto3.client("ses")


def describe(record):
    """Subject and body for one S3 record."""
    bucket = record["s3"]["bucket"]["name"]
    key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
    size = record["s3"]["object"].get("size", 0)
    subject = f"New file in {bucket}: {key.rsplit('/', 1)[-1]}"
    body = f"A new file was uploaded.\n\nBucket: {bucket}\nKey: {key}\nSize: {size} bytes\n"
    return subject, body


def send_smtp(subject, body):
    message = EmailMessage()
    message["From"] = MAIL_FROM
    message["To"] = MAIL_TO
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT) as smtp:
        smtp.send_message(message)


def send_ses(subject, body):
    ses.send_email(
        Source=MAIL_FROM,
        Destination={"ToAddresses": [MAIL_TO]},
        Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}},
    )


def lambda_handler(event, context):
    """The Lambda entry point: one email per record."""
    send = send_ses if SENDER == "ses" else send_smtp
    sent = 0
    for record in event.get("Records", []):
        subject, body = describe(record)
        send(subject, body)
        sent += 1
    return {"statusCode": 200, "body": json.dumps({"sent": sent})}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(lambda_handler(json.load(f), None)))
