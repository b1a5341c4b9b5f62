"""Runs every benchmark case for Herald and for the reference handler and prints one table.

Started by `scripts/bench`, which builds the release binaries first. Every peer runs on this
machine, on loopback: the SMTP sink (bench/smtp_sink.py), moto's server for SES, a fake
Lambda Runtime API in this process, and boto3 as the S3 client for `herald dev`.

Cases (see BENCHMARKS.md for the method and what limits each number):
  cold       `herald invoke` vs `python handler.py` on one S3 event, delivered by SMTP
  ses        the same, delivered through SES (moto); the reference uses boto3
  startup    `bootstrap` vs a Python runtime loop: process start to first Runtime API request
  pipeline   parse + route + render per second (criterion) vs the reference's parse + format
  serve      events per second through `herald serve` vs the reference behind http.server
  dev        `herald dev`: PutObject response to the message at the SMTP sink, p50 and p99
  burst      10,000 events pushed at once: time to drain, peak memory, nothing lost

Usage: python bench/run.py --herald BIN --bootstrap BIN [--quick] [--only CASE ...]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
REFERENCE = BENCH / "reference"
PYTHON = sys.executable
MAIL_TO = "team@example.com"
# Herald on the first core; the peers (sink, load generator, this driver) on the second.
HERALD_CPU = "0"
PEER_CPU = "1"


def pinned(cpu, argv):
    return ["taskset", "-c", cpu, *argv]


# ---------------------------------------------------------------------------------------------
# Inputs


def s3_event(key, size=20480):
    """One S3 ObjectCreated:Put notification, the shape AWS documents."""
    return {
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "eu-west-1",
            "eventTime": "2024-03-14T12:00:01.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAQ4EXAMPLEUPLOADER"},
            "requestParameters": {"sourceIPAddress": "203.0.113.24"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "bench",
                "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
                "object": {
                    "key": key,
                    "size": size,
                    "eTag": "b1946ac92492d2347c6235b4d2611184",
                    "sequencer": "0065F2E10000000101",
                },
            },
        }]
    }


def event_body(index):
    """A distinct event per index (a distinct key), so no dedupe store drops it."""
    return json.dumps(s3_event(f"reports/Q3+report+hb-{index}.pdf")).encode()


def herald_config(smtp_port, extra=""):
    """Herald's config for every case: SMTP to the sink, one rule matching everything."""
    return (
        "[sender]\n"
        'type = "smtp"\n'
        f'url = "smtp://127.0.0.1:{smtp_port}"\n'
        'tls = "none"\n'
        'from = "Herald <herald@example.com>"\n'
        "pool_max = 16\n"
        f"{extra}\n"
        "[[rule]]\n"
        'name = "all"\n'
        f'to = ["{MAIL_TO}"]\n'
    )


def reference_settings(smtp_port):
    """The reference handler's settings, as a function's environment would carry them."""
    return {"REFERENCE_SENDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
            "MAIL_TO": MAIL_TO, "MAIL_FROM": "uploads@example.com"}


def reference_env(smtp_port):
    return {**os.environ, **reference_settings(smtp_port)}


# ---------------------------------------------------------------------------------------------
# Peers and measuring


class Sink:
    """The SMTP sink as a process on the peer core, and its control port."""

    def __init__(self, quickack=False):
        argv = [PYTHON, str(BENCH / "smtp_sink.py")] + (["--quickack"] if quickack else [])
        self.proc = subprocess.Popen(pinned(PEER_CPU, argv), stdout=subprocess.PIPE, text=True)
        _, smtp, control = self.proc.stdout.readline().split()
        self.port, self.control = int(smtp), int(control)

    def ask(self, command):
        with socket.create_connection(("127.0.0.1", self.control)) as s:
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def count(self):
        return int(self.ask("COUNT"))

    def arrivals(self):
        return json.loads(self.ask("DUMP"))["arrivals"]

    def reset(self):
        self.ask("RESET")

    def wait_for(self, count, timeout=120.0):
        """Waits until the sink holds `count` messages; returns how many it holds."""
        deadline = time.monotonic() + timeout
        while (held := self.count()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return held

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run_timed(argv, env=None, cwd=None):
    """Runs a process to completion: (wall seconds, exit code)."""
    start = time.perf_counter()
    code = subprocess.call(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, code


def run_peak(argv, env=None, cwd=None):
    """Runs a process under GNU time: its peak RSS in MiB.

    Not wait4 on our own child: Linux carries the peak of the image before exec over, and a
    child forked from this Python driver starts out as big as the driver.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        subprocess.call(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv], env=env,
                        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return int(out.read().split()[-1]) / 1024


def peak_rss_mib(pid):
    """VmHWM of a running process: the most resident memory it ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def start_and_wait(argv, prefix, env=None, cwd=None, timeout=60.0):
    """Starts a long-running process, its output in a file, until a line starts with prefix;
    returns (process, rest of that line)."""
    log = tempfile.NamedTemporaryFile(prefix="herald-bench-", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path(log.name).read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return proc, line[len(prefix):].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{argv[0]} never printed {prefix!r}:\n{Path(log.name).read_text()}")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------
# Load generator: keep-alive HTTP/1.1 POSTs over a fixed number of connections


async def post_all(port, path, bodies, connections):
    """POSTs every body, `connections` at a time; returns (seconds, statuses)."""
    pending = list(reversed(bodies))
    statuses = []

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while pending:
            body = pending.pop()
            head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            writer.write(head + body)
            statuses.append(await read_response(reader))
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start, statuses


async def read_response(reader):
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def load(port, path, bodies, connections):
    return asyncio.run(post_all(port, path, bodies, connections))


# ---------------------------------------------------------------------------------------------
# Cases


def with_quickack_sink(case):
    """Runs a case against a sink that acknowledges at once, for the `_quickack` rows."""
    def run(args, sink, work):
        quick_sink = Sink(quickack=True)
        try:
            return case(args, quick_sink, work)
        finally:
            quick_sink.stop()
    return run


def case_cold(args, sink, work):
    """One event from a file to the SMTP sink, the whole process each time."""
    results = cold_runs(args, sink, work, ["herald", "reference"])
    quick = with_quickack_sink(lambda a, s, w: cold_runs(a, s, w, ["herald"]))
    results["herald_quickack"] = quick(args, sink, work)["herald"]
    return results


def cold_runs(args, sink, work, names):
    event = work / "event.json"
    event.write_text(json.dumps(s3_event("reports/Q3+report+%28final%29.pdf")))
    config = work / "cold.toml"
    config.write_text(herald_config(sink.port))
    herald = pinned(HERALD_CPU, [args.herald, "-c", str(config), "invoke", str(event)])
    reference = pinned(HERALD_CPU, [PYTHON, str(REFERENCE / "handler.py"), str(event)])
    results = {}
    cases = {"herald": (herald, None), "reference": (reference, reference_env(sink.port))}
    for name in names:
        argv, env = cases[name]
        run_timed(argv, env=env)  # warm the page cache
        before = sink.count()
        runs = [run_timed(argv, env=env) for _ in range(args.runs)]
        peaks = [run_peak(argv, env=env) for _ in range(args.runs)]
        delivered = sink.wait_for(before + 2 * args.runs, timeout=10) - before
        results[name] = {
            "seconds": statistics.median(seconds for seconds, _ in runs),
            "peak_mib": statistics.median(peaks),
            "runs": 2 * args.runs, "delivered": delivered,
            "failed_runs": sum(1 for _, code in runs if code != 0),
        }
    return results


def case_ses(args, sink, work):
    """The cold path again with SES instead of SMTP, against moto's server."""
    import boto3

    port = free_port()
    moto = subprocess.Popen(pinned(PEER_CPU, [PYTHON, "-m", "moto.server", "-H", "127.0.0.1",
                                              "-p", str(port)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = moto_env(f"http://127.0.0.1:{port}", work)
        wait_for_moto(env["AWS_ENDPOINT_URL"])
        client = {k.lower(): v for k, v in env.items() if k.startswith("AWS_ACCESS")}
        boto3.client("sesv2", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_secret_access_key="testing", **client,
                     ).create_email_identity(EmailIdentity="herald@example.com")
        boto3.client("ses", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_secret_access_key="testing", **client,
                     ).verify_email_identity(EmailAddress="uploads@example.com")
        return ses_runs(args, work, env)
    finally:
        moto.kill()
        moto.wait()


def moto_env(endpoint, work):
    """Environment pointing AWS clients at moto, with nothing from the machine's AWS config."""
    empty = work / "empty-aws-config"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def wait_for_moto(endpoint, timeout=30.0):
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def ses_runs(args, work, env):
    event = work / "event.json"
    event.write_text(json.dumps(s3_event("reports/Q3+report+%28final%29.pdf")))
    config = work / "ses.toml"
    config.write_text('[sender]\ntype = "ses"\nfrom = "Herald <herald@example.com>"\n'
                      f'region = "us-east-1"\n\n[[rule]]\nname = "all"\nto = ["{MAIL_TO}"]\n')
    reference_ses = {**env, "REFERENCE_SENDER": "ses", "MAIL_TO": MAIL_TO,
                     "MAIL_FROM": "uploads@example.com"}
    cases = {
        "herald": [args.herald, "-c", str(config), "invoke", str(event)],
        "reference": [PYTHON, str(REFERENCE / "handler.py"), str(event)],
    }
    results = {}
    for name, argv in cases.items():
        argv, run_env = pinned(HERALD_CPU, argv), env if name == "herald" else reference_ses
        run_timed(argv, env=run_env)  # warm the page cache
        runs = [run_timed(argv, env=run_env) for _ in range(args.runs)]
        peaks = [run_peak(argv, env=run_env) for _ in range(args.runs)]
        results[name] = {
            "seconds": statistics.median(seconds for seconds, _ in runs),
            "peak_mib": statistics.median(peaks), "runs": args.runs,
            "failed_runs": sum(1 for _, code in runs if code != 0),
        }
    return results


class RuntimeApi:
    """A fake Lambda Runtime API that notes when the first poll arrives, hands out one
    event, and notes when the function polls again after answering it."""

    def __init__(self, event):
        self.event = json.dumps(event).encode()
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = "127.0.0.1:%d" % self.server.server_address[1]

    def reset(self):
        self.polls = []
        self.answered = threading.Event()
        self.second_poll = threading.Event()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                api.polls.append(time.perf_counter())
                if len(api.polls) > 1:
                    api.second_poll.set()
                    time.sleep(5)  # the function is killed while it waits, as Lambda does
                    return
                self._reply(200, api.event, {
                    "Lambda-Runtime-Aws-Request-Id": "bench-1",
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        "arn:aws:lambda:eu-west-1:111122223333:function:herald",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.endswith("/response"):
                    api.answered.set()
                self._reply(202, b'{"status":"OK"}', {})

            def _reply(self, status, body, headers):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        return Handler


def lambda_env(api, task_root, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD", "AWS_"))}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "herald",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "eu-west-1",
        "LAMBDA_TASK_ROOT": str(task_root),
    })
    env.update(extra)
    return env


def one_start(api, argv, env, cwd):
    """(seconds to the first poll, peak RSS MiB over init and one invocation, answered)."""
    api.reset()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    answered = api.second_poll.wait(timeout=30) and api.answered.is_set()
    # Waiting for its next event, the function has done all it will: its peak is final.
    peak = peak_rss_mib(proc.pid) if answered else float("nan")
    proc.kill()
    proc.wait()
    if not api.polls:
        raise RuntimeError(f"{argv} never polled the Runtime API")
    return api.polls[0] - start, peak, answered


def case_startup(args, sink, work):
    """Process start to the first Runtime API request, and peak memory (init + one event)."""
    api = RuntimeApi(s3_event("reports/Q3+report+%28final%29.pdf"))
    (work / "herald.toml").write_text(herald_config(sink.port))
    herald = (pinned(HERALD_CPU, [args.bootstrap]), lambda_env(api, work, {}), work)
    reference = (pinned(HERALD_CPU, [PYTHON, str(REFERENCE / "runtime.py")]),
                 lambda_env(api, REFERENCE, reference_settings(sink.port)), REFERENCE)
    results = {}
    for name, (argv, env, cwd) in [("herald", herald), ("reference", reference)]:
        one_start(api, argv, env, cwd)  # warm the page cache
        runs = [one_start(api, argv, env, cwd) for _ in range(args.runs)]
        results[name] = {
            "seconds": statistics.median(r[0] for r in runs),
            "peak_mib": statistics.median(r[1] for r in runs),
            "runs": args.runs, "answered": sum(1 for r in runs if r[2]),
        }
    api.server.shutdown()
    return results


def case_pipeline(args, sink, work):
    """Criterion's median for parse + route + render, and the reference's parse + format."""
    seconds = "1" if args.quick else "3"
    subprocess.run(pinned(HERALD_CPU, ["cargo", "bench", "--bench", "pipeline", "--",
                                       "--warm-up-time", "1", "--measurement-time", seconds]),
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    herald = {}
    for name in ["parse_route_render", "pipeline_dry_run", "parse", "route", "render"]:
        estimates = target / "criterion" / name / "new" / "estimates.json"
        nanos = json.loads(estimates.read_text())["median"]["point_estimate"]
        herald[name] = {"ns_per_event": nanos, "events_per_sec": 1e9 / nanos}
    reference = reference_pipeline(args)
    return {"herald": herald, "reference": reference}


def reference_pipeline(args):
    """The reference handler's own work per event, in process: json.loads and describe()."""
    code = (
        "import json, sys, time, statistics\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import handler\n"
        "body = sys.stdin.buffer.read()\n"
        "n = int(sys.argv[2]); rates = []\n"
        "for _ in range(5):\n"
        "    start = time.perf_counter()\n"
        "    for _ in range(n):\n"
        "        for record in json.loads(body)['Records']:\n"
        "            handler.describe(record)\n"
        "    rates.append(n / (time.perf_counter() - start))\n"
        "print(statistics.median(rates))\n"
    )
    n = "20000" if args.quick else "100000"
    out = subprocess.run(pinned(HERALD_CPU, [PYTHON, "-c", code, str(REFERENCE), n]),
                         input=event_body(1), capture_output=True, check=True)
    rate = float(out.stdout)
    return {"events_per_sec": rate, "ns_per_event": 1e9 / rate}


def serve_herald(args, sink, work, cpu=HERALD_CPU):
    config = work / "serve.toml"
    config.write_text(herald_config(sink.port))
    argv = [args.herald, "-c", str(config), "serve", "--listen", "127.0.0.1:0"]
    if cpu:
        argv = pinned(cpu, argv)
    proc, url = start_and_wait(argv, "ready: ")
    return proc, int(url.rsplit(":", 1)[1]), "/minio"


def serve_reference(args, sink, work, cpu=HERALD_CPU):
    port = free_port()
    argv = [PYTHON, str(REFERENCE / "server.py"), str(port)]
    if cpu:
        argv = pinned(cpu, argv)
    proc, _ = start_and_wait(argv, "ready", env=reference_env(sink.port))
    return proc, port, "/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_serve(args, sink, work):
    """Events per second end to end: load generator -> receiver -> SMTP sink, one core."""
    results = serve_rates(args, sink, work, ["herald", "reference"])
    quick = with_quickack_sink(lambda a, s, w: serve_rates(a, s, w, ["herald"]))
    results["herald_quickack"] = quick(args, sink, work)["herald"]
    return results


def serve_rates(args, sink, work, names):
    counts = {"herald": 2000 if args.quick else 10000, "reference": 500 if args.quick else 2000}
    starts = {"herald": serve_herald, "reference": serve_reference}
    results = {}
    next_index = 0
    for name in names:
        proc, port, path = starts[name](args, sink, work)
        try:
            warm = [event_body(next_index + i) for i in range(100)]
            next_index += len(warm)
            load(port, path, warm, 16)
            sink.reset()
            bodies = [event_body(next_index + i) for i in range(counts[name])]
            next_index += len(bodies)
            seconds, statuses = load(port, path, bodies, 16)
            delivered = sink.wait_for(len(bodies), timeout=30)
        finally:
            stop(proc)
        results[name] = {
            "events": len(bodies), "seconds": seconds, "events_per_sec": len(bodies) / seconds,
            "non_200": sum(1 for s in statuses if s != 200), "delivered": delivered,
        }
    return results


def case_dev(args, sink, work):
    """PutObject response to the message at the sink, one upload at a time."""
    results = {"herald": dev_latency(args, sink, work / "plain")}
    quick = with_quickack_sink(dev_latency)
    results["herald_quickack"] = quick(args, sink, work / "quickack")
    return results


def dev_latency(args, sink, work):
    import boto3
    from botocore.config import Config

    uploads = 1000
    work.mkdir()
    config = work / "dev.toml"
    config.write_text(herald_config(sink.port))
    argv = pinned(HERALD_CPU, [args.herald, "-c", str(config), "dev", "--listen", "127.0.0.1:0",
                               "--data-dir", str(work / "dev-data"), "--bucket", "uploads"])
    proc, endpoint = start_and_wait(argv, "ready: ")
    try:
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="herald-dev", aws_secret_access_key="herald-dev-secret",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        sink.reset()
        for i in range(20):  # warm up the client, the endpoint and the SMTP pool
            s3.put_object(Bucket="uploads", Key=f"warm/w-{i}.txt", Body=b"warm up\n")
        sink.wait_for(20, timeout=10)
        sink.reset()
        responded = {}
        for i in range(uploads):
            s3.put_object(Bucket="uploads", Key=f"latency/hb-{i}.txt", Body=b"x" * 1024)
            responded[str(i)] = time.monotonic()
            wait_count(sink, i + 1)
        arrivals = sink.arrivals()
        peak = peak_rss_mib(proc.pid)
    finally:
        stop(proc)
    # The pipeline may deliver before the client has read the response: that counts as 0.
    latencies = [max(0.0, arrivals[k] - t) for k, t in responded.items() if k in arrivals]
    missing = sorted(set(responded) - arrivals.keys(), key=int)
    if missing:
        print(f"dev: no message seen for uploads {missing[:20]}", file=sys.stderr)
    return {
        "uploads": uploads, "delivered": len(latencies), "peak_mib": peak,
        "p50_ms": percentile(latencies, 0.50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "before_response": sum(1 for k, t in responded.items()
                               if k in arrivals and arrivals[k] < t),
    }


def wait_count(sink, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while sink.count() < count and time.monotonic() < deadline:
        time.sleep(0.0005)


def case_burst(args, sink, work):
    """10,000 events pushed at once over 256 connections: time to drain, peak memory, losses."""
    events = 10000
    results = {}
    for name, start, base in [("herald", serve_herald, 1_000_000),
                              ("reference", serve_reference, 2_000_000)]:
        proc, port, path = start(args, sink, work, cpu=None)
        try:
            sink.reset()
            bodies = [event_body(base + i) for i in range(events)]
            seconds, statuses = load(port, path, bodies, 256)
            # Both receivers answer once the email was handed over, so the last answer marks
            # the end of the drain; the wait only makes sure the sink has counted everything.
            sink.wait_for(events, timeout=60)
            arrivals = sink.arrivals()
            expected = {str(base + i) for i in range(events)}
            peak = peak_rss_mib(proc.pid)
        finally:
            stop(proc)
        results[name] = {
            "events": events, "seconds": seconds, "peak_mib": peak,
            "delivered": len(expected & arrivals.keys()),
            "lost": len(expected - arrivals.keys()),
            "non_200": sum(1 for s in statuses if s != 200),
        }
    return results


CASES = {
    "cold": case_cold, "ses": case_ses, "startup": case_startup, "pipeline": case_pipeline,
    "serve": case_serve, "dev": case_dev, "burst": case_burst,
}


# ---------------------------------------------------------------------------------------------
# The table


def ratio(better, worse):
    return f"{worse / better:.1f}x" if better and worse else "-"


def rows(results):
    """(case, herald, reference, ratio, target, met) for every measured case."""
    out = []
    if cold := results.get("cold"):
        h, r = cold["herald"], cold["reference"]
        ok = h["failed_runs"] == 0 and h["delivered"] == h["runs"]
        out.append(("cold path: invoke to SMTP, time", ms(h["seconds"]), ms(r["seconds"]),
                    ratio(h["seconds"], r["seconds"]), ">= 10x faster",
                    met(ok and r["seconds"] >= 10 * h["seconds"])))
        q = cold["herald_quickack"]
        out.append(("  same, sink ACKs at once (no Nagle stall)", ms(q["seconds"]),
                    ms(r["seconds"]), ratio(q["seconds"], r["seconds"]), ">= 10x faster",
                    met(q["failed_runs"] == 0 and r["seconds"] >= 10 * q["seconds"])))
        out.append(("cold path: peak memory", mib(h["peak_mib"]), mib(r["peak_mib"]),
                    ratio(h["peak_mib"], r["peak_mib"]), "< 1/3 of reference",
                    met(ok and h["peak_mib"] * 3 < r["peak_mib"])))
    if ses := results.get("ses"):
        h, r = ses["herald"], ses["reference"]
        ok = h["failed_runs"] == 0 and r["failed_runs"] == 0
        out.append(("cold path, SES via moto: time", ms(h["seconds"]), ms(r["seconds"]),
                    ratio(h["seconds"], r["seconds"]), "-", "-" if ok else "FAILED RUNS"))
        out.append(("cold path, SES via moto: peak memory", mib(h["peak_mib"]),
                    mib(r["peak_mib"]), ratio(h["peak_mib"], r["peak_mib"]), "-", "-"))
    if start := results.get("startup"):
        h, r = start["herald"], start["reference"]
        ok = h["answered"] == h["runs"]
        out.append(("bootstrap: start to first poll", ms(h["seconds"]), ms(r["seconds"]),
                    ratio(h["seconds"], r["seconds"]), "< 15 ms", met(ok and h["seconds"] < 0.015)))
        out.append(("bootstrap: peak memory (init + 1 event)", mib(h["peak_mib"]),
                    mib(r["peak_mib"]), ratio(h["peak_mib"], r["peak_mib"]), "< 20 MB",
                    met(ok and h["peak_mib"] * 1048576 < 20e6)))
    if pipe := results.get("pipeline"):
        h, r = pipe["herald"]["parse_route_render"], pipe["reference"]
        out.append(("parse + route + render, one core", rate(h["events_per_sec"]),
                    rate(r["events_per_sec"]), ratio(h["ns_per_event"], r["ns_per_event"]),
                    "> 200,000/s", met(h["events_per_sec"] > 200_000)))
        d = pipe["herald"]["pipeline_dry_run"]
        out.append(("  whole Pipeline, dry run (herald only)", rate(d["events_per_sec"]), "-",
                    "-", "-", "-"))
    if serve := results.get("serve"):
        h, r, q = serve["herald"], serve["reference"], serve["herald_quickack"]
        out.append(("serve -> SMTP, one core", rate(h["events_per_sec"]),
                    rate(r["events_per_sec"]),
                    ratio(1 / h["events_per_sec"], 1 / r["events_per_sec"]), "-", lost(h)))
        out.append(("  same, sink ACKs at once (no Nagle stall)", rate(q["events_per_sec"]),
                    rate(r["events_per_sec"]),
                    ratio(1 / q["events_per_sec"], 1 / r["events_per_sec"]), "-", lost(q)))
    if dev := results.get("dev"):
        for label, h in [("", dev["herald"]), ("  sink ACKs at once: ", dev["herald_quickack"])]:
            ok = h["delivered"] == h["uploads"]
            out.append((f"{label or 'herald dev: '}upload to SMTP, p50", f"{h['p50_ms']:.2f} ms",
                        "-", "-", "< 5 ms", met(ok and h["p50_ms"] < 5)))
            out.append((f"{label or 'herald dev: '}upload to SMTP, p99", f"{h['p99_ms']:.2f} ms",
                        "-", "-", "< 25 ms", met(ok and h["p99_ms"] < 25)))
    if burst := results.get("burst"):
        h, r = burst["herald"], burst["reference"]
        ok = h["lost"] == 0 and h["non_200"] == 0
        out.append(("burst of 10,000: time to drain", f"{h['seconds']:.2f} s",
                    f"{r['seconds']:.2f} s", ratio(h["seconds"], r["seconds"]), "nothing lost",
                    met(ok)))
        out.append(("burst of 10,000: peak memory", mib(h["peak_mib"]), mib(r["peak_mib"]),
                    ratio(h["peak_mib"], r["peak_mib"]), "< 64 MB",
                    met(ok and h["peak_mib"] * 1048576 < 64e6)))
        out.append(("burst of 10,000: lost", str(h["lost"]), str(r["lost"]), "-", "0",
                    met(h["lost"] == 0)))
    return out


def lost(run):
    return "LOST MAIL" if run["delivered"] < run["events"] or run["non_200"] else "-"


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def mib(value):
    return f"{value:.1f} MiB"


def rate(per_sec):
    return f"{per_sec:,.0f}/s"


def met(ok):
    return "yes" if ok else "NO"


def print_table(table):
    head = ("case", "herald", "reference", "ratio", "target", "met?")
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    for row in [head, tuple("-" * w for w in widths), *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--herald", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter measurements")
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    args.runs = 5 if args.quick else 15
    # Some cases run the binaries from another working directory.
    args.herald = str(Path(args.herald).resolve())
    args.bootstrap = str(Path(args.bootstrap).resolve())

    results = {}
    sink = Sink()
    try:
        with tempfile.TemporaryDirectory(prefix="herald-bench-") as work:
            for name, case in CASES.items():
                if args.only and name not in args.only:
                    continue
                print(f"==> {name}", file=sys.stderr, flush=True)
                case_dir = Path(work) / name
                case_dir.mkdir()
                results[name] = case(args, sink, case_dir)
    finally:
        sink.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    print_table(rows(results))


if __name__ == "__main__":
    main()
