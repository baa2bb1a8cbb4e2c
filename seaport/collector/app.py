"""`seaport collect`: the HTTP collector for tracking pixels, tracker batches, consent and access logs.

    seaport collect --bootstrap 127.0.0.1:9092 --port 8080 --cors-origin https://www.example.cn

Endpoints (see docs/collector.md):
  GET  /p.gif?event=page_view&anonymous_id=…&page=…   the pixel: one beacon/1 event, always a 1×1 GIF
  POST /collect    a JSON batch of beacon/1 events (application/json or text/plain for sendBeacon)
  POST /consent    one consent/1 change
  POST /logs       access/1 records, JSON lines
  GET  /seaport.js the tracker; GET /demo the demo page; GET /healthz; GET /metrics (Prometheus)

A 2xx answer means every event of the request is on the broker (idempotent producer, acks=all);
Kafka unreachable -> 503 (retry later); invalid -> 400 with a short reason, nothing produced.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from seaport.collector.events import (
    Message,
    Rejected,
    RequestFacts,
    access_log_message,
    batch_events,
    beacon_from_query,
    beacon_message,
    consent_message,
    log_records,
    now_utc,
    parse_json,
)
from seaport.collector.kafka_sink import DeliverySink, KafkaUnavailable
from seaport.collector.limits import Limits, RateLimiter, client_ip, parse_networks
from seaport.collector.metrics import CollectorMetrics
from seaport.errors import SeaportError
from seaport.kafka.topics import key_paths, topic_name
from seaport.options import add_kafka_options, add_prefix_option, number_type, port_number, positive_int

log = logging.getLogger("seaport.collector")

# A 1×1 transparent GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache", "Expires": "0"}
ANONYMOUS_COOKIE = "_sp_aid"  # the tracker's first-party anonymous id cookie (R13)
STATIC = Path(__file__).parent / "static"
TRACKER = Path(__file__).resolve().parents[2] / "tracker" / "seaport.js"

SINK = web.AppKey("sink", DeliverySink)
METRICS = web.AppKey("metrics", CollectorMetrics)
LIMITS = web.AppKey("limits", Limits)
RATE = web.AppKey("rate", RateLimiter)
TOPICS = web.AppKey("topics", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def topic_names(prefix: str) -> dict[str, str]:
    """The contract topics the collector writes, under the run's prefix."""
    return {base: topic_name(base, prefix) for base in ("beacons.raw", "access_logs.raw", "consent.events")}


# --- what the collector knows about a request -------------------------------------------------


def request_facts(request: web.Request, with_cookie: bool = False) -> RequestFacts:
    """Receive time, client IP (socket or trusted proxy), user agent, and the GPC/DNT opt-out.

    The anonymous-id cookie is read only for pixels (parsing cookies costs on the hot path)."""
    limits = request.app[LIMITS]
    headers = request.headers
    return RequestFacts(
        # Several X-Forwarded-For lines are one comma-joined list, in order (RFC 7230 §3.2.2).
        client_ip=client_ip(request.remote, ",".join(headers.getall("X-Forwarded-For", ())), limits.trusted_proxies),
        user_agent=headers.get("User-Agent"),
        opt_out=headers.get("Sec-GPC") == "1" or headers.get("DNT") == "1",
        received_at=now_utc(),
        anonymous_cookie=request.cookies.get(ANONYMOUS_COOKIE) if with_cookie and "Cookie" in headers else None,
    )


def _origin_allowed(request: web.Request) -> bool:
    """CORS for configured origins only; the collector's own pages (the demo) are same-origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-origin call: a server, a replay, a pixel
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[LIMITS].allowed_origins


def _cors_headers(request: web.Request) -> dict[str, str]:
    """The answer's CORS headers: the origin echoed only when it is allowed (a refused origin's
    403 must not hand it a readable answer)."""
    origin = request.headers.get("Origin")
    if origin is None or not _origin_allowed(request):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def _body(request: web.Request) -> bytes:
    limit = request.app[LIMITS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, "body_too_large")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body_too_large") from None


def _check_content_type(request: web.Request, allowed: tuple[str, ...]) -> None:
    if request.content_type not in allowed:
        raise Rejected(415, "unsupported_content_type")


def _check_caller(request: web.Request, ip: str) -> None:
    if not _origin_allowed(request):
        raise Rejected(403, "origin_not_allowed")
    if not request.app[RATE].allow(ip):
        raise Rejected(429, "rate_limited")


def _validated_each(items: list, build: Callable) -> list[Message]:
    """Validate every item of a batch; one bad item rejects the batch (nothing is produced)."""
    messages = []
    for index, item in enumerate(items):
        try:
            messages.append(build(item))
        except Rejected as e:
            raise Rejected(e.status, e.reason, index) from None
    return messages


async def _produce(request: web.Request, topic: str, endpoint: str, messages: list[Message]) -> None:
    await request.app[SINK].send(request.app[TOPICS][topic], messages)
    request.app[METRICS].accepted[endpoint] += len(messages)


def _rejection(request: web.Request, e: Rejected) -> web.Response:
    request.app[METRICS].rejected[e.reason] += 1
    body: dict[str, object] = {"error": e.reason}
    if e.index is not None:
        body["index"] = e.index
    headers = {**_cors_headers(request), **({"Retry-After": "1"} if e.status == 429 else {})}
    return web.json_response(body, status=e.status, headers=headers)


def _unavailable(request: web.Request) -> web.Response:
    request.app[METRICS].rejected["kafka_unavailable"] += 1
    return web.json_response(
        {"error": "kafka_unavailable"}, status=503, headers={"Retry-After": "5", **_cors_headers(request)}
    )


def _answering_refusals(handler: Handler) -> Handler:
    """A JSON endpoint whose refusals are answers: 4xx with the reason, 503 when Kafka did not take it."""

    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Rejected as e:
            return _rejection(request, e)
        except KafkaUnavailable:
            return _unavailable(request)

    return answering


def _timed(endpoint: str, handler: Handler) -> Handler:
    async def timed(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            request.app[METRICS].observe_latency(endpoint, time.perf_counter() - started)

    return timed


# --- endpoints -------------------------------------------------------------------------------


async def pixel(request: web.Request) -> web.Response:
    """GET /p.gif: the query is one beacon/1 event (R13); the answer is always the GIF, the status
    tells what happened (200 on the broker, 4xx refused, 503 retry later)."""
    status, reason = 200, ""
    try:
        facts = request_facts(request, with_cookie=True)
        _check_caller(request, facts.client_ip)
        message = beacon_message(beacon_from_query(request.query), facts)
        await _produce(request, "beacons.raw", "pixel", [message])
    except Rejected as e:
        request.app[METRICS].rejected[e.reason] += 1
        status, reason = e.status, e.reason
    except KafkaUnavailable:
        request.app[METRICS].rejected["kafka_unavailable"] += 1
        status, reason = 503, "kafka_unavailable"
    headers = {**NO_CACHE, **({"X-Seaport-Error": reason} if reason else {})}
    return web.Response(body=PIXEL, status=status, content_type="image/gif", headers=headers)


async def collect(request: web.Request) -> web.Response:
    """POST /collect: a batch of tracker events; `text/plain` too, as `navigator.sendBeacon` sends."""
    facts = request_facts(request)
    _check_caller(request, facts.client_ip)
    _check_content_type(request, ("application/json", "text/plain"))
    events = batch_events(await _body(request), request.app[LIMITS].max_events)
    messages = _validated_each(events, lambda event: beacon_message(event, facts))
    await _produce(request, "beacons.raw", "collect", messages)
    return web.json_response({"accepted": len(messages)}, headers=_cors_headers(request))


async def consent(request: web.Request) -> web.Response:
    """POST /consent: one consent/1 change from the tracker's `seaport('consent', …)` (R2, R3)."""
    facts = request_facts(request)
    _check_caller(request, facts.client_ip)
    _check_content_type(request, ("application/json", "text/plain"))
    message = consent_message(parse_json(await _body(request)), facts)
    await _produce(request, "consent.events", "consent", [message])
    return web.json_response({"accepted": 1}, headers=_cors_headers(request))


async def logs(request: web.Request) -> web.Response:
    """POST /logs: access/1 records in JSON lines, from a web server's log shipper."""
    facts = request_facts(request)
    _check_caller(request, facts.client_ip)
    _check_content_type(request, ("application/x-ndjson", "application/jsonl", "application/json", "text/plain"))
    records = log_records(await _body(request), request.app[LIMITS].max_events)
    messages = _validated_each(records, access_log_message)
    await _produce(request, "access_logs.raw", "logs", messages)
    return web.json_response({"accepted": len(messages)})


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight: only configured origins may post from other sites."""
    if not _origin_allowed(request):
        return _rejection(request, Rejected(403, "origin_not_allowed"))
    return web.Response(
        status=204,
        headers={
            **_cors_headers(request),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        },
    )


async def healthz(request: web.Request) -> web.Response:
    kafka = "down" if request.app[SINK].brokers_down else "up"
    return web.json_response({"status": "ok", "kafka": kafka})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render().encode(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def tracker_script(request: web.Request) -> web.StreamResponse:
    if not TRACKER.is_file():
        raise web.HTTPNotFound(text="tracker not found")
    return web.FileResponse(
        TRACKER,
        headers={"Content-Type": "application/javascript; charset=utf-8", "Cache-Control": "public, max-age=300"},
    )


async def demo(request: web.Request) -> web.StreamResponse:
    """The demo page; every /demo/… path serves it too, so single-page routes survive a reload."""
    return web.FileResponse(STATIC / "demo.html", headers={"Cache-Control": "no-cache"})


# --- the application -------------------------------------------------------------------------


class RouteOnlyAccessLogger(AbstractAccessLogger):
    """Request log without client IPs, identifiers or query strings: method, route, status, time.

    The route as registered (`/p.gif`, `/demo/{route}`), or `unknown`: a path as sent may carry an
    identifier (`/demo/user/<id>`, `/p.gif;openid=<id>`), so it is never written (R12: whoever
    reads the log needs no personal data)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        method = request.method if request.method in hdrs.METH_ALL else "other"  # a made-up method is text too
        self.logger.info("%s %s %s %.1fms", method, _route(request), response.status, time * 1000)


def _route(request: web.BaseRequest) -> str:
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):  # a request too malformed to be routed has no match info
        return "unknown"
    return resource.canonical if resource is not None else "unknown"


class _WithoutClientDetails(logging.Filter):
    """aiohttp's server log quotes the client's IP and its raw request line (which may carry an
    identifier) with a traceback: drop a malformed request's record (the request log still has the
    400) and reduce any other to the exception's class (R12)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            return False
        record.msg = f"error handling a request: {type(error).__name__}" if error else "error handling a request"
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def make_app(
    bootstrap: str, limits: Limits, topic_prefix: str = "", delivery_timeout_ms: int = 5000
) -> web.Application:
    """The collector as an aiohttp application (tests run it with `aiohttp.web.AppRunner`)."""
    app = web.Application(client_max_size=limits.max_body_bytes)
    app[LIMITS] = limits
    app[RATE] = RateLimiter(limits.rate_per_ip, limits.burst_per_ip)
    app[METRICS] = CollectorMetrics()
    app[TOPICS] = topic_names(topic_prefix)
    for base in app[TOPICS]:
        key_paths(base)  # the field policy's subject rule, read before the first request waits for it
    sink = DeliverySink(bootstrap, delivery_timeout_ms)
    sink.on_delivered = app[METRICS].delivered
    app[SINK] = sink

    async def start_sink(app: web.Application) -> None:
        sink.start(asyncio.get_running_loop())

    async def close_sink(app: web.Application) -> None:
        await sink.close()

    app.on_startup.append(start_sink)
    app.on_cleanup.append(close_sink)
    app.router.add_get("/p.gif", _timed("pixel", pixel))
    app.router.add_post("/collect", _timed("collect", _answering_refusals(collect)))
    app.router.add_post("/consent", _timed("consent", _answering_refusals(consent)))
    app.router.add_post("/logs", _timed("logs", _answering_refusals(logs)))
    for path in ("/collect", "/consent", "/logs"):
        app.router.add_route("OPTIONS", path, preflight)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/seaport.js", tracker_script)
    app.router.add_get("/demo", demo)
    app.router.add_get("/demo/{route:.*}", demo)
    from seaport.collector import snowplow  # here: snowplow.py imports this module's helpers

    snowplow.add_routes(app)
    from seaport.collector import sensors  # here: sensors.py imports this module's helpers

    sensors.add_routes(app)
    return app


# NaN would refuse every request; 0 means no limit
_requests_per_second = number_type(float, lambda x: 0 <= x < math.inf, "a number of requests per second, 0 or more")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_kafka_options(parser)
    defaults = Limits()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=8080, help="port to listen on (default: %(default)s)")
    add_prefix_option(parser)
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin (https://host[:port]) allowed to post from the browser; repeatable",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="IP_OR_CIDR",
        help="a proxy whose X-Forwarded-For is believed; repeatable (default: none)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=defaults.max_body_bytes,
        help="largest request body (default: %(default)s)",
    )
    parser.add_argument(
        "--max-events",
        type=positive_int,
        default=defaults.max_events,
        help="most events per /collect batch or /logs request (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_requests_per_second,
        default=defaults.rate_per_ip,
        metavar="PER_SECOND",
        help="requests per second per client IP, 0 = no limit (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-burst",
        type=positive_int,
        default=defaults.burst_per_ip,
        help="burst allowance per client IP (default: %(default)s)",
    )
    parser.add_argument(
        "--delivery-timeout-ms",
        type=number_type(int, lambda n: n >= 100, "a number of milliseconds, 100 or more"),
        default=5000,
        help="how long to wait for Kafka before answering 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes sharing the port (SO_REUSEPORT) (default: %(default)s)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    parser.add_argument(
        "--login-id-is-openid",
        action="store_true",
        help="Sensors Data / Snowplow trackers: the site's login id (login(), setUserId) is the WeChat "
        "OpenId, so it becomes user.openid (default: the login id is dropped)",
    )


def limits_from_args(args: argparse.Namespace) -> Limits:
    try:
        proxies = parse_networks(args.trusted_proxy)
    except ValueError:
        raise SeaportError("--trusted-proxy takes IP addresses or CIDR blocks") from None
    for origin in args.cors_origin:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise SeaportError(f"--cors-origin must look like https://host[:port], got {origin!r}")
    return Limits(
        max_body_bytes=args.max_body_bytes,
        max_events=args.max_events,
        rate_per_ip=args.rate_limit,
        burst_per_ip=args.rate_burst,
        allowed_origins=frozenset(args.cors_origin),
        trusted_proxies=proxies,
        login_id_is_openid=args.login_id_is_openid,
    )


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise SeaportError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        except (OverflowError, socket.gaierror, UnicodeError):
            raise SeaportError(f"cannot listen on {host}:{port}: not a valid host and port (port 0-65535)") from None


async def serve(args: argparse.Namespace, limits: Limits, reuse_port: bool = False) -> None:
    """Run one collector process until SIGINT/SIGTERM, then deliver what is buffered."""
    app = make_app(args.bootstrap, limits, args.topic_prefix, args.delivery_timeout_ms)
    access_log = None if args.no_access_log else log
    runner = web.AppRunner(app, access_log=access_log, access_log_class=RouteOnlyAccessLogger, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    # What start-up made (modules, the app, the models) lives as long as the process: out of the
    # garbage collector's sight, a full collection takes 0.4 ms instead of 30-45 ms of a stalled
    # event loop (each worker had one about every 30 s at 5,000 pixels/s).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _configure_request_log() -> None:
    """Our own handler: the request log must not depend on how imported libraries set up logging."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("aiohttp.server").addFilter(_WithoutClientDetails())


def _run_loop(args: argparse.Namespace, limits: Limits, reuse_port: bool) -> None:
    """uvloop where installed (about 1.5× the requests per second of asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args, limits, reuse_port))
    else:
        uvloop.run(serve(args, limits, reuse_port))


def _serve_process(args: argparse.Namespace, limits: Limits) -> None:
    _configure_request_log()
    _run_loop(args, limits, reuse_port=True)


def run(args: argparse.Namespace) -> int:
    _configure_request_log()
    if args.kafka_client != "confluent":
        raise SeaportError("the collector needs confluent-kafka (its delivery reports); --kafka-client confluent")
    limits = limits_from_args(args)
    _check_port_free(args.host, args.port)
    print(
        f"seaport collect: listening on http://{args.host}:{args.port} (topics to {args.bootstrap}, "
        f"{args.workers} worker(s))",
        flush=True,
    )
    if args.workers == 1:
        _run_loop(args, limits, reuse_port=False)
        return 0
    return _run_workers(args, limits)


def _run_workers(args: argparse.Namespace, limits: Limits) -> int:
    """Several processes on one port (the kernel spreads connections); each has its own producer."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_serve_process, args=(args, limits), daemon=False) for _ in range(args.workers)]
    for worker in workers:
        worker.start()

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
    return 0
