"""Replay a `seaport simulate --out` file set through the collector over HTTP.

    seaport collect --port 8080 --trusted-proxy 127.0.0.1 &
    seaport replay --url http://127.0.0.1:8080 traffic.jsonl traffic.*.jsonl

The replayer plays a reverse proxy in front of the collector: it sends each beacon's simulated
client IP in `X-Forwarded-For`, so start the collector with `--trusted-proxy 127.0.0.1` (otherwise
every event gets the loopback IP; nothing else changes). Consent changes go first (one per
request to /consent), then beacons in batches to /collect (grouped by client IP), then access
logs in JSON-lines batches to /logs. A batch the collector refuses (one bad line rejects its
batch) is re-sent line by line, so every valid line gets in and every malformed one is refused
on its own, as it would be from a real client. Erasure requests have no HTTP endpoint (use
`seaport erase`); their file is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from schemas import safejson
from seaport.errors import SeaportError
from seaport.options import positive_float, positive_int
from seaport.progress import Progress

ROUTES = {"consent.events": "/consent", "beacons.raw": "/collect", "access_logs.raw": "/logs"}
ORDER = ("consent.events", "beacons.raw", "access_logs.raw")  # consent first: it rules what follows


@dataclass
class ReplayResult:
    """Per topic: lines the collector accepted (2xx) and refused (4xx), and files not replayed."""

    accepted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused_lines: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    skipped_files: list[Path] = field(default_factory=list)


def topic_of(path: Path) -> str | None:
    """The naming of `seaport simulate --out FILE`: `traffic.access_logs.raw.jsonl` ->
    `access_logs.raw`; FILE itself (no topic in its name) holds the beacons."""
    name = path.name.removesuffix(".jsonl")
    topics = (*ROUTES, "erasure.requests")
    return next((t for t in topics if name.endswith("." + t) or name == t), "beacons.raw")


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _client_ip(line: bytes) -> str | None:
    try:
        event = safejson.loads(line)
        ip = event["network"]["ip"]
    except (ValueError, KeyError, TypeError):
        return None
    return ip if isinstance(ip, str) else None


def _batches(topic: str, lines: list[bytes], size: int) -> Iterable[tuple[str | None, list[bytes]]]:
    """(client IP for X-Forwarded-For, lines) per request; beacons grouped by their client IP."""
    if topic == "consent.events":
        yield from ((None, [line]) for line in lines)
        return
    groups: dict[str | None, list[bytes]] = defaultdict(list)
    for line in lines:
        groups[_client_ip(line) if topic == "beacons.raw" else None].append(line)
    for ip, group in groups.items():
        for i in range(0, len(group), size):
            yield ip, group[i : i + size]


def _body(topic: str, lines: Sequence[bytes]) -> tuple[bytes, str]:
    if topic == "access_logs.raw":
        return b"\n".join(lines), "application/x-ndjson"
    if topic == "consent.events":
        return lines[0], "application/json"
    return b"[" + b",".join(lines) + b"]", "application/json"


class _Replayer:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, result: ReplayResult, retries: int) -> None:
        self.session, self.base_url, self.result, self.retries = session, base_url.rstrip("/"), result, retries

    async def post(self, topic: str, ip: str | None, lines: list[bytes]) -> int:
        """POST one request; retries on 503/429 with back-off, as the tracker does."""
        body, content_type = _body(topic, lines)
        headers = {"Content-Type": content_type, **({"X-Forwarded-For": ip} if ip else {})}
        delay = 0.2
        for _ in range(self.retries):
            async with self.session.post(self.base_url + ROUTES[topic], data=body, headers=headers) as response:
                await response.read()
                if response.status not in (429, 503):
                    return response.status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise SeaportError(f"the collector kept answering 429/503 on {ROUTES[topic]}")

    async def send(self, topic: str, ip: str | None, lines: list[bytes]) -> None:
        status = await self.post(topic, ip, lines)
        if status < 300:
            self.result.accepted[topic] += len(lines)
        elif len(lines) > 1:
            for line in lines:  # find the bad line(s): each valid one still gets in
                await self.send(topic, ip, [line])
        else:
            self.result.rejected[topic] += 1
            self.result.refused_lines[topic] += lines


async def replay_over_http_async(
    base_url: str, files: Iterable[Path | str], batch_size: int = 20, concurrency: int = 16, retries: int = 20
) -> ReplayResult:
    """Send every line of the files to the collector at `base_url`; see the module docstring."""
    result = ReplayResult()
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    for path in map(Path, files):
        topic = topic_of(path)
        if topic not in ROUTES:
            result.skipped_files.append(path)
            continue
        if not path.is_file():
            raise SeaportError(f"no such file: {path}")
        by_topic[topic] += _lines(path)
    limit = asyncio.Semaphore(concurrency)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            replayer = _Replayer(session, base_url, result, retries)

            async def send(topic: str, ip: str | None, lines: list[bytes], bar: Progress) -> None:
                async with limit:
                    await replayer.send(topic, ip, lines)
                bar.update(len(lines))

            for topic in ORDER:  # topic by topic: all consent is on the broker before any beacon
                with Progress(f"replaying {topic}", total=len(by_topic[topic]), unit="line") as bar:
                    await asyncio.gather(
                        *(send(topic, ip, lines, bar) for ip, lines in _batches(topic, by_topic[topic], batch_size))
                    )
    except aiohttp.ClientError as e:
        raise SeaportError(f"cannot reach the collector at {base_url}: {type(e).__name__}") from None
    return result


def replay_over_http(
    base_url: str, files: Iterable[Path | str], batch_size: int = 20, concurrency: int = 16
) -> ReplayResult:
    """Blocking form of `replay_over_http_async`, for scripts and `run_local.sh`."""
    return asyncio.run(replay_over_http_async(base_url, files, batch_size, concurrency))


def wait_until_up(base_url: str, timeout: float) -> None:
    """Wait for the collector's /healthz (it may have been started a moment ago)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SeaportError(f"no collector answers at {base_url}") from None
            time.sleep(0.2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", dest="base_url", default="http://127.0.0.1:8080", help="the collector (default: %(default)s)"
    )
    parser.add_argument("--wait", type=positive_float, default=30, help="seconds to wait for the collector to answer")
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        help="the files of simulate --out FILE: FILE (beacons) and FILE-stem.<topic>.jsonl",
    )
    parser.add_argument("--batch-size", type=positive_int, default=20, help="events per request (default: %(default)s)")
    parser.add_argument(
        "--refused-out",
        type=Path,
        metavar="STEM",
        help="write the lines the collector refused to STEM.<topic>.jsonl (to show the pipeline's dead letters)",
    )


def run(args: argparse.Namespace) -> int:
    wait_until_up(args.base_url, args.wait)
    result = replay_over_http(args.base_url, args.files, args.batch_size)
    for topic in ORDER:
        print(f"{topic}: {result.accepted[topic]} accepted, {result.rejected[topic]} refused by the collector")
    for path in result.skipped_files:
        print(f"skipped {path} (no HTTP endpoint for this topic)")
    if args.refused_out:
        for topic, lines in result.refused_lines.items():
            path = Path(f"{args.refused_out}.{topic}.jsonl")
            path.write_bytes(b"".join(line + b"\n" for line in lines))
            print(f"refused lines: {path}")
    return 0
