"""The reference handler behind a minimal Lambda custom runtime loop.

Lambda's managed Python runtime does the same thing with more machinery: import the handler
module, then poll the Runtime API (GET .../invocation/next), call the handler and post its
answer. The benchmark times this loop from process start to its first poll, as it times
Herald's `bootstrap`.
"""

import http.client
import json
import os

import handler

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime/invocation"


def main():
    conn = http.client.HTTPConnection(API)
    while True:
        conn.request("GET", f"{PREFIX}/next")
        answer = conn.getresponse()
        event = json.loads(answer.read())
        request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
        result = handler.lambda_handler(event, None)
        conn.request("POST", f"{PREFIX}/{request_id}/response", body=json.dumps(result))
        conn.getresponse().read()


if __name__ == "__main__":
    main()
