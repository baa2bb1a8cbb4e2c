"""Load test of the collector with `wrk` on loopback: requests/s, p50/p99, and events on the topic.

    seaport loadtest --bootstrap 127.0.0.1:9092 --duration 30

Starts its own collector (`--workers`, no rate limit, no access log) on a free port, writing to
fresh topics under a unique prefix on the given broker, then runs `wrk` twice: pixel GETs, and
POST /collect batches of 20 events. A Lua script counts the answers that carry events (2xx GIFs
and `{"accepted": …}`), and the topic's end offsets give the events Kafka holds, so the report
compares the two. With `--requests N` each wrk thread sends N event requests, then only
`/metrics` until the time is up: every event request has its answer, and the counts must be
equal (the test does that); without it, requests still in flight when wrk stops may reach Kafka
uncounted (at most one per connection). Needs Debian's `wrk` (`apt-get install -y wrk`).
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
from seaport.options import positive_int

PROJECT_DIR = Path(__file__).resolve().parents[2]
BATCH_EVENTS = 20
PIXEL_QUERY = "/p.gif?event=page_view&anonymous_id=c-load0001&session_id=s-load&page=%2Fproducts%2Fhealth"

# Counts answers that carry events; after `limit` event requests per thread, asks for /metrics only.
WRK_SCRIPT = """
counted = 0  -- a global: done() reads it from each thread
local sent = 0
local limit = tonumber(os.getenv("SEAPORT_LOAD_REQUESTS") or "0")
local event_request, idle_request
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args)
  -- built here, not at load: wrk adds the Host header to wrk.headers only by now
  event_request = wrk.format(%(method)s, %(path)s, %(headers)s, %(body)s)
  idle_request = wrk.format("GET", "/metrics")
end

function request()
  sent = sent + 1
  if limit > 0 and sent > limit then return idle_request end
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
        return WRK_SCRIPT % {"method": '"GET"', "path": _lua(PIXEL_QUERY), "headers": "nil", "body": "nil"}
    events = [
        {"event": "page_view", "anonymous_id": f"c-load{i:04d}", "session_id": "s-load", "page": "/policy/query"}
        for i in range(BATCH_EVENTS)
    ]
    return WRK_SCRIPT % {
        "method": '"POST"',
        "path": '"/collect"',
        "headers": '{["Content-Type"] = "application/json"}',
        "body": _lua(json.dumps(events)),
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
    base_url: str, kind: str, duration_s: int, connections: int, threads: int = 1, requests_per_thread: int = 0
) -> WrkResult:
    """One bounded wrk run against the collector (`kind` is `pixel` or `batch`)."""
    if shutil.which("wrk") is None:
        raise SeaportError("`wrk` not found: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(kind))
    try:
        env = {**os.environ, "SEAPORT_LOAD_REQUESTS": str(requests_per_thread)}
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


def load_test(
    bootstrap: str, duration_s: int, connections: int, workers: int, requests_per_thread: int = 0
) -> dict[str, tuple[WrkResult, int]]:
    """Both runs; per kind: (wrk figures, events that reached the topic during that run)."""
    from seaport.kafka.topics import create_topics, topic_name

    prefix = f"load{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, prefix)
    beacons = topic_name("beacons.raw", prefix)
    results: dict[str, tuple[WrkResult, int]] = {}
    options = ("--rate-limit", "0", "--no-access-log", "--workers", str(workers))
    with running_collector(bootstrap, prefix, *options) as base_url:
        for kind in ("pixel", "batch"):
            before = topic_events(bootstrap, beacons)
            result = run_wrk(base_url, kind, duration_s, connections, requests_per_thread=requests_per_thread)
            results[kind] = (result, settled_topic_events(bootstrap, beacons) - before)
    return results


def report(results: dict[str, tuple[WrkResult, int]]) -> str:
    lines = [
        f"{'run':<22}{'requests/s':>11}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'2xx event answers':>19}{'events on topic':>17}{'errors':>8}"
    ]
    for kind, (r, on_topic) in results.items():
        per = 1 if kind == "pixel" else BATCH_EVENTS
        label = "pixel GET" if kind == "pixel" else f"POST /collect ×{BATCH_EVENTS}"
        lines.append(
            f"{label:<22}{r.requests_per_s:>11.0f}{r.requests_per_s * per:>10.0f}{r.p50_ms:>8.2f}"
            f"{r.p99_ms:>8.2f}{r.event_answers * per:>19}{on_topic:>17}{r.errors:>8}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("SEAPORT_BOOTSTRAP", "127.0.0.1:9092"),
        help="a running broker (default: $SEAPORT_BOOTSTRAP or %(default)s)",
    )
    parser.add_argument("--duration", type=positive_int, default=30, help="seconds per run (default: %(default)s)")
    parser.add_argument("--connections", type=positive_int, default=32, help="wrk connections (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=2, help="collector processes (default: %(default)s)")
    parser.add_argument(
        "--requests", type=int, default=0, help="event requests per wrk thread, then idle requests (default: unbounded)"
    )


def run(args: argparse.Namespace) -> int:
    results = load_test(args.bootstrap, args.duration, args.connections, args.workers, args.requests)
    print(
        f"collector: {args.workers} worker(s); wrk: 1 thread, {args.connections} connections, "
        f"{args.duration}s per run, loopback, broker on {args.bootstrap}"
    )
    print(report(results))
    return 0
