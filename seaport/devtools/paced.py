"""A fixed-rate (open-loop) HTTP load of pixel GETs: the latency at a given rate, not at saturation.

    python -m seaport.devtools.paced --url http://127.0.0.1:8080 --rate 5000 --duration 30

`wrk` keeps its connections busy: it measures the most the collector can do, and its p99 is
mostly the queue that saturation builds. Here request i is due at `start + i / rate`, whatever
the answers before it did; it goes out on a free keep-alive connection, or waits for one, and its
latency counts from when it was due, not from when it left (a stall delays every request due
during it, as it would delay real visitors: no "coordinated omission"). Each request is one
visitor's page view: a unique `event_id`, one of `--visitors` anonymous ids (and a session each).

Runs in its own process (one asyncio loop, uvloop where installed), stops sending after
`--duration` seconds, waits for every answer, and prints one JSON object: requests due, sent,
answered, 2xx GIFs (events the collector says are on the broker), the rate achieved, latency
percentiles in ms, and its own CPU seconds (it shares the machine with what it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from collections import deque
from urllib.parse import urlsplit

from seaport.options import positive_float, positive_int

TICK_S = 0.001  # the scheduler sleeps at least this long (event-loop timers have 1 ms resolution)


def pixel_path(run: str, index: int, visitors: int) -> str:
    """Request `index`'s pixel: a unique event id, one of `visitors` anonymous ids and their session."""
    visitor = index % visitors
    return (
        f"/p.gif?event=page_view&event_id={run}-{index:09d}&anonymous_id=c-{run}-{visitor:05d}"
        f"&session_id=s-{run}-{visitor:05d}&page=%2Fproducts%2F{index % 50}"
    )


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; calls back with (status, is_gif) per answer."""

    def __init__(self, load: PacedLoad) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due = 0.0  # when the request in flight was due; 0 when idle
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            status = int(head[9:12])
            due, self.due = self.due, 0.0
            self.load.answered(self, due, status, "content-type: image/gif" in head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.due:
            self.load.failed += 1
        if not self.closed.done():
            self.closed.set_result(None)


class PacedLoad:
    """Sends `rate` pixel requests per second for `duration_s` over `connections` connections."""

    def __init__(self, url: str, rate: float, duration_s: float, connections: int, visitors: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rate, self.duration_s, self.connections, self.visitors = rate, duration_s, connections, visitors
        self.run_id = uuid.uuid4().hex[:8]
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[tuple[bytes, float]] = deque()  # due, but no connection free yet
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.gifs_2xx = 0
        self.sent = self.failed = 0
        self.done = asyncio.Event()

    def request(self, index: int) -> bytes:
        path = pixel_path(self.run_id, index, self.visitors)
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: seaport-paced\r\n\r\n".encode()

    def answered(self, connection: _Connection, due: float, status: int, gif: bool) -> None:
        self.latencies.append(time.perf_counter() - due)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300 and gif:
            self.gifs_2xx += 1
        if self.waiting:
            request, due = self.waiting.popleft()
            connection.send(request, due)
        else:
            self.idle.append(connection)
            if self.sent == self.total and len(self.idle) == len(self.open):
                self.done.set()

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        self.open = []
        for _ in range(self.connections):
            _, protocol = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
            self.open.append(protocol)
            self.idle.append(protocol)
        self.total = int(self.rate * self.duration_s)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        index = 0
        while index < self.total:
            now = time.perf_counter()
            while index < self.total and start + index / self.rate <= now:
                due = start + index / self.rate
                request = self.request(index)
                index += 1
                self.sent += 1
                if self.idle:
                    self.idle.popleft().send(request, due)
                else:
                    self.waiting.append((request, due))
            await asyncio.sleep(max(TICK_S, start + index / self.rate - time.perf_counter()))
        sending_s = time.perf_counter() - start
        if not (len(self.idle) == len(self.open) and not self.waiting):
            try:
                await asyncio.wait_for(self.done.wait(), timeout=30)
            except TimeoutError:
                pass
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        for connection in self.open:
            assert connection.transport is not None
            connection.transport.close()
        return self.summary(
            sending_s, cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
        )

    def summary(self, sending_s: float, cpu_s: float) -> dict:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2) if ordered else 0.0

        return {
            "rate": self.rate,
            "duration_s": self.duration_s,
            "connections": self.connections,
            "visitors": self.visitors,
            "due": self.total,
            "sent": self.sent,
            "answered": len(self.latencies),
            "failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "gifs_2xx": self.gifs_2xx,
            "sent_per_s": round(self.sent / sending_s, 1) if sending_s else 0.0,
            "p50_ms": pct(0.5),
            "p90_ms": pct(0.9),
            "p99_ms": pct(0.99),
            "p999_ms": pct(0.999),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else 0.0,
            "client_cpu_s": round(cpu_s, 2),
        }


def paced_load(url: str, rate: float, duration_s: float, connections: int = 64, visitors: int = 500) -> dict:
    """Run one fixed-rate load in this process; the summary `PacedLoad.summary` describes."""
    load = PacedLoad(url, rate, duration_s, connections, visitors)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load.run())
    return uvloop.run(load.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the collector, e.g. http://127.0.0.1:8080")
    parser.add_argument("--rate", type=positive_int, required=True, help="pixel requests per second")
    parser.add_argument("--duration", type=positive_float, required=True, help="seconds of sending")
    parser.add_argument("--connections", type=positive_int, default=64, help="keep-alive connections")
    parser.add_argument("--visitors", type=positive_int, default=500, help="distinct anonymous ids")
    args = parser.parse_args(argv)
    print(json.dumps(paced_load(args.url, args.rate, args.duration, args.connections, args.visitors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
