"""Load test of the collector on loopback: requests/s, p50/p99, and events on the topic.

    seaport loadtest --bootstrap 127.0.0.1:9092 --duration 30 --rate 5000

Starts its own collector (`--workers`, no rate limit, no access log) on a free port, writing to
fresh topics under a unique prefix on the given broker. A `--warmup` of pixel GETs comes first and
is reported on its own row: a broker that has just started answers slowly for its first seconds
(its JVM is still loading and compiling), and that is not the collector's tail. Then `wrk` runs
twice in a closed loop (each of `--connections` connections sends its next request when the answer
came, so requests/s is about connections / latency until the cores are full): pixel GETs, and
POST /collect batches of 20 events. Then, with `--rate`, pixel GETs at that fixed rate (open
loop, `seaport.devtools.paced` in its own process): the latency a visitor sees at that rate, not
the queue a closed loop builds. Every pixel is a page view of its own (a unique `event_id`) from
one of `--visitors` anonymous ids.

A Lua script counts the answers that carry events (2xx GIFs and `{"accepted": …}`), and the
topic's end offsets give the events Kafka holds, so the report compares the two. With
`--requests N` each wrk thread sends N event requests, then only `/metrics` until the time is
up: every event request has its answer, and the counts must be equal (the test does that);
without it, requests still in flight when wrk stops may reach Kafka uncounted (at most one per
connection). The fixed-rate run waits for every answer, so there the counts are always equal.
Needs Debian's `wrk` (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seaport.devtools.broker import free_port
from seaport.errors import SeaportError
from seaport.options import number_type, positive_int

PROJECT_DIR = Path(__file__).resolve().parents[2]
BATCH_EVENTS = 20
# Lua's string.format: run, thread, request number; run and visitor for the anonymous id and session
PIXEL_FORMAT = (
    "/p.gif?event=page_view&event_id=%s-%d-%09d&anonymous_id=c-%s-%05d&session_id=s-%s-%05d&page=%%2Fproducts%%2Fhealth"
)

# Counts answers that carry events; after `limit` event requests per thread, asks for /metrics only.
WRK_SCRIPT = """
counted = 0  -- a global: done() reads it from each thread
local sent = 0
local limit = tonumber(os.getenv("SEAPORT_LOAD_REQUESTS") or "0")
local visitors = tonumber(os.getenv("SEAPORT_LOAD_VISITORS") or "500")
local run = os.getenv("SEAPORT_LOAD_RUN") or "run"
local event_request, idle_request
local path_format = %(path_format)s  -- pixels: a unique event id and one of `visitors` anonymous ids
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- built here, not at load: wrk adds the Host header to wrk.headers only by now
  event_request = wrk.format(%(method)s, %(path)s, %(headers)s, %(body)s)
  idle_request = wrk.format("GET", "/metrics")
end

function request()
  sent = sent + 1
  if limit > 0 and sent > limit then return idle_request end
  if path_format then
    local visitor = sent %% visitors
    return wrk.format("GET", string.format(path_format, run, thread_id, sent, run, visitor, run, visitor))
  end
  return event_request
end

function response(status, headers, body)
  if status >= 200 and status < 300 and (headers["Content-Type"] == "image/gif"
      or string.sub(body, 1, 11) == '{"accepted"') then
    counted = counted + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("counted") end
  io.write(string.format("SEAPORT_EVENT_ANSWERS %%d\\n", total))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: all requests, their rate and latency, and the 2xx answers that carried events."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    event_answers: int
    errors: int
    output: str


def _lua(literal: str | None) -> str:
    return "nil" if literal is None else json.dumps(literal)


def wrk_script(kind: str) -> str:
    """The Lua script for `pixel` or `batch` runs."""
    if kind == "pixel":
        return WRK_SCRIPT % {
            "method": '"GET"',
            "path": '"/p.gif"',
            "headers": "nil",
            "body": "nil",
            "path_format": _lua(PIXEL_FORMAT),
        }
    events = [
        {"event": "page_view", "anonymous_id": f"c-load{i:04d}", "session_id": "s-load", "page": "/policy/query"}
        for i in range(BATCH_EVENTS)
    ]
    return WRK_SCRIPT % {
        "method": '"POST"',
        "path": '"/collect"',
        "headers": '{["Content-Type"] = "application/json"}',
        "body": _lua(json.dumps(events)),
        "path_format": "nil",
    }


def _millis(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of `wrk --latency` output, plus the script's count of event answers."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise SeaportError(f"unexpected wrk output (no match for {pattern!r})")
        return match

    p50 = find(r"\n\s+50%\s+([\d.]+)(us|ms|s|m)\b")
    p99 = find(r"\n\s+99%\s+([\d.]+)(us|ms|s|m)\b")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests=int(find(r"(\d+) requests in").group(1)),
        requests_per_s=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_millis(*p50.groups()),
        p99_ms=_millis(*p99.groups()),
        event_answers=int(find(r"SEAPORT_EVENT_ANSWERS (\d+)").group(1)),
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        output=output,
    )


def run_wrk(
    base_url: str,
    kind: str,
    duration_s: int,
    connections: int,
    threads: int = 1,
    requests_per_thread: int = 0,
    visitors: int = 500,
) -> WrkResult:
    """One bounded wrk run against the collector (`kind` is `pixel` or `batch`)."""
    if shutil.which("wrk") is None:
        raise SeaportError("`wrk` not found: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(kind))
    try:
        env = {
            **os.environ,
            "SEAPORT_LOAD_REQUESTS": str(requests_per_thread),
            "SEAPORT_LOAD_VISITORS": str(visitors),
            "SEAPORT_LOAD_RUN": uuid.uuid4().hex[:8],
        }
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            script.name,
            base_url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=duration_s + 30)
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        raise SeaportError(f"wrk failed with exit code {done.returncode}")
    return parse_wrk(done.stdout)


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SeaportError("the collector exited at start")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SeaportError("the collector did not answer /healthz in time")


@contextmanager
def running_collector(bootstrap: str, topic_prefix: str, *options: str, log: Path | None = None) -> Iterator[str]:
    """A `seaport collect` process on a free port; yields its base URL; stopped by its PID after."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "seaport.cli",
        "collect",
        "--bootstrap",
        bootstrap,
        "--port",
        str(port),
        "--topic-prefix",
        topic_prefix,
        *options,
    ]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def topic_events(bootstrap: str, topic: str) -> int:
    """How many messages the topic holds (sum of its partitions' end offsets; topics start empty)."""
    from seaport.kafka.clients import make_client

    client = make_client("confluent", bootstrap)
    try:
        return sum(client.end_offsets(topic).values())
    finally:
        client.close()


def settled_topic_events(bootstrap: str, topic: str, wait_s: float = 2.0) -> int:
    """The topic's count once it has stopped growing (answers still in flight when wrk stopped)."""
    count = topic_events(bootstrap, topic)
    while True:
        time.sleep(wait_s)
        again = topic_events(bootstrap, topic)
        if again == count:
            return count
        count = again


def run_paced(base_url: str, rate: int, duration_s: int, connections: int, visitors: int) -> dict:
    """One fixed-rate pixel run (`seaport.devtools.paced`) in its own process; its JSON summary."""
    command = [
        sys.executable,
        "-m",
        "seaport.devtools.paced",
        "--url",
        base_url,
        "--rate",
        str(rate),
        "--duration",
        str(duration_s),
        "--connections",
        str(connections),
        "--visitors",
        str(visitors),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=duration_s + 60,
    )
    if done.returncode != 0:
        raise SeaportError(f"the fixed-rate client failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def load_test(
    bootstrap: str,
    duration_s: int,
    connections: int,
    workers: int,
    requests_per_thread: int = 0,
    rate: int = 0,
    visitors: int = 500,
    kinds: tuple[str, ...] = ("pixel", "batch"),
    rate_connections: int = 64,
    prefix: str | None = None,
    warmup_s: int = 0,
) -> dict[str, tuple[WrkResult | dict, int]]:
    """A pixel warm-up of `warmup_s` seconds when above 0 (reported as `warmup`), the wrk runs of
    `kinds`, then the fixed-rate run when `rate` > 0; per run: (its figures, events that reached the
    topic during it). A fixed-rate run's figures are `seaport.devtools.paced`'s dict. The topics are
    made under `prefix` (default: a fresh one)."""
    from seaport.kafka.topics import create_topics, topic_name

    prefix = prefix or f"load{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, prefix)
    beacons = topic_name("beacons.raw", prefix)
    results: dict[str, tuple[WrkResult | dict, int]] = {}
    options = ("--rate-limit", "0", "--no-access-log", "--workers", str(workers))
    runs = [("warmup", "pixel", warmup_s)] if warmup_s else []
    runs += [(kind, kind, duration_s) for kind in kinds]
    with running_collector(bootstrap, prefix, *options) as base_url:
        for name, kind, seconds in runs:
            before = topic_events(bootstrap, beacons)
            result = run_wrk(
                base_url, kind, seconds, connections, requests_per_thread=requests_per_thread, visitors=visitors
            )
            results[name] = (result, settled_topic_events(bootstrap, beacons) - before)
        if rate:
            before = topic_events(bootstrap, beacons)
            paced = run_paced(base_url, rate, duration_s, rate_connections, visitors)
            results["paced"] = (paced, settled_topic_events(bootstrap, beacons) - before)
    return results


def report(results: dict[str, tuple[WrkResult | dict, int]]) -> str:
    lines = [
        f"{'run':<32}{'requests/s':>11}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'2xx event answers':>19}{'events on topic':>17}{'errors':>8}"
    ]
    paced = None
    for kind, (r, on_topic) in results.items():
        if isinstance(r, dict):
            paced = r
            label = f"pixel GET at {r['rate']}/s"
            errors = r["answered"] - r["gifs_2xx"] + r["failed"] + r["sent"] - r["answered"]
            lines.append(
                f"{label:<32}{r['sent_per_s']:>11.0f}{r['gifs_2xx'] / r['duration_s']:>10.0f}{r['p50_ms']:>8.2f}"
                f"{r['p99_ms']:>8.2f}{r['gifs_2xx']:>19}{on_topic:>17}{errors:>8}"
            )
            continue
        per = BATCH_EVENTS if kind == "batch" else 1
        label = {
            "warmup": "pixel GET, warm-up",
            "pixel": "pixel GET, closed loop",
            "batch": f"POST /collect ×{BATCH_EVENTS}, closed loop",
        }[kind]
        lines.append(
            f"{label:<32}{r.requests_per_s:>11.0f}{r.requests_per_s * per:>10.0f}{r.p50_ms:>8.2f}"
            f"{r.p99_ms:>8.2f}{r.event_answers * per:>19}{on_topic:>17}{r.errors:>8}"
        )
    if paced is not None:
        lines.append(
            f"fixed rate: {paced['sent']} requests due and sent, {paced['answered']} answered "
            f"(statuses {paced['statuses']}); p90 {paced['p90_ms']} ms, p99.9 {paced['p999_ms']} ms, "
            f"max {paced['max_ms']} ms; the client used {paced['client_cpu_s']} s of CPU"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load-test the collector on loopback. First --warmup seconds of pixel GETs, reported on their own "
        "row (a broker that has just started answers slowly for its first seconds). Then two wrk runs in a "
        "closed loop (--connections connections, each sending its next request when the answer came: "
        "requests/s is about connections / latency until the cores are full, and the p99 includes the "
        "queue that builds): pixel GETs and POST /collect batches of 20. Then pixel GETs at a fixed --rate "
        "(open loop: request i is due at i/rate seconds whatever came before, its latency counts from when "
        "it was due): the p50/p99 a visitor sees at that rate. Every pixel is its own page view (unique "
        "event_id) from one of --visitors anonymous ids. Each run reports the 2xx answers that carried "
        "events beside the events the topic received."
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("SEAPORT_BOOTSTRAP", "127.0.0.1:9092"),
        help="a running broker (default: $SEAPORT_BOOTSTRAP or %(default)s)",
    )
    parser.add_argument("--duration", type=positive_int, default=30, help="seconds per run (default: %(default)s)")
    parser.add_argument(
        "--connections", type=positive_int, default=64, help="wrk connections, closed-loop runs (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=number_type(int, lambda n: n >= 0, "a whole number of seconds, 0 or more"),
        default=10,
        help="seconds of pixel GETs before the measured runs, reported on their own row; 0 skips it "
        "(default: %(default)s)",
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="collector processes (default: %(default)s)")
    parser.add_argument(
        "--requests", type=int, default=0, help="event requests per wrk thread, then idle requests (default: unbounded)"
    )
    parser.add_argument(
        "--rate",
        type=number_type(int, lambda n: n >= 0, "a whole number of requests per second, 0 or more"),
        default=5000,
        help="pixel requests per second of the fixed-rate run; 0 skips it (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-connections",
        type=positive_int,
        default=64,
        help="keep-alive connections of the fixed-rate client; a request due while all are busy waits, "
        "and that wait counts in its latency (default: %(default)s)",
    )
    parser.add_argument(
        "--visitors", type=positive_int, default=500, help="distinct anonymous ids of the pixels (default: %(default)s)"
    )
    parser.add_argument("--only-rate", action="store_true", help="skip the two wrk runs: only the fixed-rate run")


def run(args: argparse.Namespace) -> int:
    kinds = () if args.only_rate else ("pixel", "batch")
    if args.only_rate and not args.rate:
        raise SeaportError("--only-rate needs a --rate above 0")
    results = load_test(
        args.bootstrap,
        args.duration,
        args.connections,
        args.workers,
        args.requests,
        rate=args.rate,
        visitors=args.visitors,
        kinds=kinds,
        rate_connections=args.rate_connections,
        warmup_s=args.warmup,
    )
    print(
        f"collector: {args.workers} worker(s); broker on {args.bootstrap}; loopback; {args.duration}s per run; "
        f"wrk closed loop: 1 thread, {args.connections} connections; warm-up {args.warmup}s; fixed rate: {args.rate_connections} "
        f"connections; pixels from {args.visitors} visitors, each a unique event id"
    )
    print(report(results))
    return 0
