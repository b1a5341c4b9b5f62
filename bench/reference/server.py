"""The reference handler behind Python's threading HTTP server, the usual container shape.

`POST` any path with an S3 event as the body; the answer is the handler's result once its
emails were sent. Usage: `python server.py PORT`.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import handler


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        result = json.dumps(handler.lambda_handler(json.loads(body), None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(result)))
        self.end_headers()
        self.wfile.write(result)


class Server(ThreadingHTTPServer):
    # The default backlog of 5 would turn a burst into one-second SYN retries.
    request_queue_size = 1024
    daemon_threads = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Receiver)
    print("ready", flush=True)
    server.serve_forever()
