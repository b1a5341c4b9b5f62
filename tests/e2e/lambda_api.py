"""A local Lambda Runtime API and the `bootstrap` binary running against it.

The Runtime API is the documented HTTP protocol a custom runtime polls
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): `GET .../invocation/next`
hands out one event with its request id, deadline, function ARN and trace id in headers;
`POST .../invocation/{id}/response` or `.../error` settles it. This one serves events the test
queues, one at a time, and keeps what the function answered.
"""

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BOOTSTRAP_BIN = os.environ.get(
    "BOOTSTRAP_BIN", str(Path(__file__).resolve().parents[2] / "target" / "debug" / "bootstrap")
)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111122223333:function:herald"


class RuntimeApi:
    """Serves queued events to one function process and records its answers."""

    def __init__(self):
        self.events = queue.Queue()
        self.results = {}
        self.init_errors = []
        self.settled = threading.Condition()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        host, port = self.server.server_address
        return f"{host}:{port}"

    def invoke(self, event, timeout=30.0):
        """Queues one event and waits for the function's answer: ("response"|"error", body)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        with self.settled:
            while request_id not in self.results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no answer to invocation {request_id} within {timeout} s")
                self.settled.wait(left)
            return request_id, self.results[request_id]

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _settle(self, request_id, kind, body):
        with self.settled:
            self.results[request_id] = (kind, json.loads(body) if body else None)
            self.settled.notify_all()

    def _next_event(self):
        while not self.stopping.is_set():
            try:
                return self.events.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b"{}")
                event = api._next_event()
                if event is None:
                    return self._reply(503, b"{}")
                request_id, body = event
                deadline_ms = int(time.time() * 1000) + 30_000
                self._reply(200, body, {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id":
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append(body)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response",
                                                                                    "error"):
                    api._settle(parts[1], parts[2], body)
                else:
                    return self._reply(404, b"{}")
                self._reply(202, b'{"status":"OK"}')

            def _reply(self, status, body, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the function process was stopped while it waited for an event

        return Handler


class Bootstrap:
    """The bootstrap binary as Lambda starts it: config in LAMBDA_TASK_ROOT, JSON logs."""

    def __init__(self, api, task_root):
        env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD")}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "herald",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/herald",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/06/03/[$LATEST]0123456789abcdef",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
            "AWS_REGION": "eu-west-1",
            "LAMBDA_TASK_ROOT": str(task_root),
        })
        self.output = []
        self.proc = subprocess.Popen(
            [BOOTSTRAP_BIN], cwd=task_root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8",
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def log_records(self):
        """Every log line, parsed; fails the test on a line that is not JSON."""
        return [json.loads(line) for line in self.output if line.strip()]

    def stop(self):
        # Lambda freezes and then kills a runtime; it never asks it to stop.
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def fixture(path):
    return json.loads((FIXTURES / path).read_text(encoding="utf-8"))
