"""Snowplow browser trackers (4.x): their `tp2` POST batches and `/i` GETs, as beacon/1 events.

    POST /com.snowplowanalytics.snowplow/tp2   payload_data 1-0-4: {"schema": …, "data": [events]}
    GET  /i?e=pv&eid=…&dtm=…&url=…&cx=…        one event in the query; answers the 1×1 GIF

`e=pv` is a page_view, `e=ue` with a link_click a click, and page pings (`e=pp`) become ONE
page_leave per page view (`PageLeaves`); other events are acknowledged (2xx) and not stored.
Every event goes through `beacon_message`, as beacon/1 events do. The tracker retries every
answer but 2xx/400/401/403/410/422, forever: so bad input gets 400 (where /collect says 413
too), Kafka down 503, and a batch with some bad events has its good ones produced and answers
200. See docs/collector.md, "Snowplow trackers".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from seaport.collector import app as collector
from seaport.collector.events import Message, Rejected, RequestFacts, beacon_message, parse_json
from seaport.collector.kafka_sink import KafkaUnavailable
from seaport.errors import SeaportError

POST_PATH, GET_PATH = "/com.snowplowanalytics.snowplow/tp2", "/i"
_IGLU = "iglu:com.snowplowanalytics.snowplow/{}/jsonschema/1-"
PAYLOAD_DATA, WEB_PAGE, LINK_CLICK = (_IGLU.format(name) for name in ("payload_data", "web_page", "link_click"))
MAX_BATCH_EVENTS = 200  # at least (or --max-events): a batch is at most ~maxPostBytes (40 kB) of events
MAX_OPEN = 200_000  # page views waiting for their pings, per process
IDLE_ENV = "SEAPORT_SNOWPLOW_IDLE_S"  # seconds without a ping before a page view's page_leave goes out
IDLE_DEFAULT_S = 120.0
TICK_S = 1.0
ALLOW_HEADERS = "Content-Type, SP-Anonymous"  # what the tracker sends (customHeaders would need more)
_PAGE_ID = re.compile(r"[0-9A-Za-z-]{1,58}")  # `sp-pl-<id>` fits beacon/1's 64-character event_id
_MILLIS = re.compile(r"[0-9]{1,15}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = {"pv": "page_view", "pp": "ping", "ue": "click"}


@dataclass
class Decoded:
    """One tracker event: `kind` page_view, click, ping or ignored, and the beacon/1 dict it maps to
    (for a ping, the draft of its page view's page_leave)."""

    kind: str
    beacon: dict[str, Any] | None = None
    page_id: str | None = None  # the web_page context's id: a page view and its pings share it
    ms: int = 0  # client time (ttm, else dtm), epoch milliseconds
    message: Message | None = None


def _embedded_json(fields: dict[str, str], plain: str, encoded: str) -> Any:
    """`co`/`ue_pr` (JSON text) or `cx`/`ue_px` (unpadded base64url of UTF-8 JSON); None if absent."""
    if plain in fields:
        return parse_json(fields[plain].encode("utf-8", "surrogatepass"))  # a lone surrogate: not_json
    if encoded not in fields:
        return None
    value = fields[encoded]
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise Rejected(400, "bad_base64:" + encoded) from None
    return parse_json(raw)


def _web_page_id(contexts: Any) -> str | None:
    if contexts is None:
        return None
    if not isinstance(contexts, dict) or not isinstance(contexts.get("data"), list):
        raise Rejected(400, "invalid:contexts")
    for entity in contexts["data"]:
        if isinstance(entity, dict) and str(entity.get("schema")).startswith(WEB_PAGE):
            data = entity.get("data")
            page_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(page_id, str) and _PAGE_ID.fullmatch(page_id):
                return page_id
    return None


def _link_click(unstruct: Any) -> dict[str, Any] | None:
    """The link_click's data; None for any other self-describing event."""
    inner = unstruct.get("data") if isinstance(unstruct, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("schema"), str):
        raise Rejected(400, "invalid:unstruct_event")
    if not inner["schema"].startswith(LINK_CLICK):
        return None
    if not isinstance(inner.get("data"), dict):
        raise Rejected(400, "invalid:link_click")
    return inner["data"]


def _page(url: str | None) -> str | None:
    """The path and query of `url` (no scheme, host or fragment)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        raise Rejected(400, "wrong_field:url") from None
    return (parts.path or "/") + ("?" + parts.query if parts.query else "")


def decode(fields: Any, facts: RequestFacts, anonymous: bool = False, login_id_is_openid: bool = False) -> Decoded:
    """One tracker event (its payload fields) as a beacon/1 dict, not yet validated by the model.
    Raises Rejected (400) on input no tracker sends; reasons name fields, never values."""
    if not isinstance(fields, dict):
        raise Rejected(400, "not_an_object")
    if not all(isinstance(value, str) for value in fields.values()):
        raise Rejected(400, "not_a_string")  # payload_data 1-0-4: every value is a string
    if not fields.get("e"):
        raise Rejected(400, "missing_field:e")
    contexts, unstruct = _embedded_json(fields, "co", "cx"), _embedded_json(fields, "ue_pr", "ue_px")
    page_id = _web_page_id(contexts)
    stamp = fields.get("ttm") or fields.get("dtm") or None  # neither: the receive time
    if stamp is not None and not _MILLIS.fullmatch(stamp):
        raise Rejected(400, "wrong_field:dtm")
    ms = int(stamp) if stamp else int(facts.received_at.timestamp() * 1000)
    try:
        ts = (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
    except OverflowError:  # after the year 9999
        raise Rejected(400, "wrong_field:dtm") from None
    kind = _KINDS.get(fields["e"], "ignored")
    link = _link_click(unstruct) if kind == "click" else None
    if kind == "ignored" or (kind == "click" and link is None) or (kind == "ping" and page_id is None):
        return Decoded("ignored")
    beacon: dict[str, Any] = {"schema": "beacon/1", "event": kind, "ts": ts, "page": _page(fields.get("url"))}
    if link is not None:
        names = ("elementId", "elementContent", "targetUrl")
        beacon["element"] = next((v for n in names if isinstance(v := link.get(n), str) and v), None)
    beacon["event_id"] = "sp-" + fields["eid"] if fields.get("eid") else None
    beacon["referrer"] = fields.get("refr") or None
    if not anonymous:  # under SP-Anonymous, no identifier at all
        beacon["anonymous_id"] = next((fields[n] for n in ("duid", "tnuid", "nuid", "sid") if fields.get(n)), None)
        beacon["session_id"] = fields.get("sid") or None
        if login_id_is_openid and fields.get("uid"):
            beacon["user"] = {"openid": fields["uid"]}
    if not beacon.get("anonymous_id"):
        beacon["anonymous_id"] = f"sp-anon-{uuid.uuid4().hex}"  # one per event: links nothing
    if kind == "ping":  # its page view's page_leave, once that closes (duration set then)
        beacon.update(event="page_leave", event_id=f"sp-pl-{page_id}", duration_ms=0)
    return Decoded(kind, {k: v for k, v in beacon.items() if v is not None}, page_id, ms)


@dataclass
class _Visit:
    touched: float  # monotonic time of this page view's last event
    viewed_ms: int | None = None  # the page view's client time, when this process took it
    last_ms: int | None = None  # the latest ping's client time
    leave: dict[str, Any] | None = None  # the latest ping's page_leave draft, and its request's facts
    facts: RequestFacts | None = None


class PageLeaves:
    """Per process: web_page id -> its page view's time and its latest ping. A page view without a
    ping for `idle_s` (or at shutdown) closes as ONE page_leave, duration = last ping - page view."""

    def __init__(self, idle_s: float, max_open: int = MAX_OPEN) -> None:
        self.idle_s, self.max_open = idle_s, max_open
        self.open: dict[str, _Visit] = {}  # least recently touched first
        self.unsent: list[Message] = []

    def _touch(self, page_id: str) -> _Visit:
        visit = self.open.pop(page_id, None) or _Visit(0.0)
        visit.touched = time.monotonic()
        self.open[page_id] = visit
        return visit

    def view(self, page_id: str, ms: int) -> None:
        visit = self._touch(page_id)
        visit.viewed_ms = ms if visit.viewed_ms is None else min(visit.viewed_ms, ms)

    def ping(self, page_id: str, ms: int, leave: dict[str, Any], facts: RequestFacts) -> None:
        visit = self._touch(page_id)
        if visit.last_ms is None or ms >= visit.last_ms:
            visit.last_ms, visit.leave, visit.facts = ms, leave, facts

    def close(self, everything: bool, rejected: Callable[[str], None]) -> None:
        """Closed page views' page_leaves to `unsent`; none when the view or every ping went unseen."""
        cutoff = time.monotonic() - self.idle_s
        while self.open:
            page_id, visit = next(iter(self.open.items()))
            if not everything and visit.touched > cutoff and len(self.open) <= self.max_open:
                return
            del self.open[page_id]
            if visit.viewed_ms is None or visit.last_ms is None or visit.leave is None or visit.facts is None:
                continue
            leave = {**visit.leave, "duration_ms": max(0, visit.last_ms - visit.viewed_ms)}
            try:
                self.unsent.append(beacon_message(leave, visit.facts))
            except Rejected as e:  # e.g. over beacon/1's 7 days
                rejected(e.reason)


PAGE_LEAVES = web.AppKey("snowplow_page_leaves", PageLeaves)


async def _send_page_leaves(app: web.Application, everything: bool = False) -> None:
    leaves, metrics = app[PAGE_LEAVES], app[collector.METRICS]
    leaves.close(everything, lambda reason: metrics.rejected.update([reason]))
    batch, leaves.unsent = leaves.unsent, []
    if not batch:
        return
    try:
        await app[collector.SINK].send(app[collector.TOPICS]["beacons.raw"], batch)
        metrics.accepted["snowplow_page_leave"] += len(batch)
    except KafkaUnavailable:  # kept (bounded) for the next tick; the pipeline drops duplicates
        metrics.rejected["kafka_unavailable"] += 1
        leaves.unsent = (batch + leaves.unsent)[-leaves.max_open :]


async def _page_leave_ticker(app: web.Application) -> AsyncIterator[None]:
    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_S)
            await _send_page_leaves(app)

    task = asyncio.create_task(tick())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await _send_page_leaves(app, everything=True)  # cleanup_ctx ends before the sink closes


# --- HTTP ---------------------------------------------------------------------------------------


def _cors(request: web.Request) -> dict[str, str]:
    """The tracker fetches with `credentials: 'include'`: allowed origins get credentials allowed."""
    origin = request.headers.get("Origin")
    if origin is None or not collector._origin_allowed(request):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}


async def _take(request: web.Request, events: list[Any], facts: RequestFacts, endpoint: str) -> dict[str, int]:
    """Decode and validate each event; produce the valid ones. Bad ones are counted, and refuse
    the request (400) only when no event of it is good."""
    anonymous = "SP-Anonymous" in request.headers
    if anonymous:
        facts = replace(facts, client_ip="")  # nor the IP
    app, openid = request.app, request.app[collector.LIMITS].login_id_is_openid
    taken, reasons = [], []
    for fields in events:
        try:
            event = decode(fields, facts, anonymous, openid)
            if event.beacon is not None:  # validated as any beacon/1 event (a ping's draft too)
                event.message = beacon_message(dict(event.beacon), facts)
            taken.append(event)
        except Rejected as refused:
            reasons.append(refused.reason)
    if not taken:
        raise Rejected(400, reasons[0])
    messages = [e.message for e in taken if e.message is not None and e.kind != "ping"]
    if messages:
        await app[collector.SINK].send(app[collector.TOPICS]["beacons.raw"], messages)
        app[collector.METRICS].accepted[endpoint] += len(messages)
    app[collector.METRICS].rejected.update(reasons)
    for e in taken:
        if e.kind == "page_view" and e.page_id:
            app[PAGE_LEAVES].view(e.page_id, e.ms)
        elif e.kind == "ping" and e.page_id and e.beacon:
            app[PAGE_LEAVES].ping(e.page_id, e.ms, e.beacon, facts)
    return {"accepted": len(messages), "acknowledged": len(taken) - len(messages), "rejected": len(reasons)}


async def post_events(request: web.Request) -> dict[str, int]:
    facts = collector.request_facts(request)
    collector._check_caller(request, facts.client_ip)
    payload = parse_json(await collector._body(request))
    if not isinstance(payload, dict) or not str(payload.get("schema")).startswith(PAYLOAD_DATA):
        raise Rejected(400, "wrong_schema")
    events = payload.get("data")
    if not isinstance(events, list) or not events:
        raise Rejected(400, "empty_batch" if isinstance(events, list) else "not_a_batch")
    if len(events) > max(request.app[collector.LIMITS].max_events, MAX_BATCH_EVENTS):
        raise Rejected(400, "too_many_events")
    return await _take(request, events, facts, "snowplow_tp2")


async def get_event(request: web.Request) -> dict[str, int]:
    facts = collector.request_facts(request)
    collector._check_caller(request, facts.client_ip)
    try:  # yarl turns bytes that are not UTF-8 into U+FFFD: decode strictly instead
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, errors="strict", max_num_fields=500)
        "".join(k + v for k, v in pairs).encode()  # nor a lone surrogate (raw bytes in the request line)
    except UnicodeError:
        raise Rejected(400, "not_utf8") from None
    except ValueError:
        raise Rejected(400, "too_many_fields") from None
    return await _take(request, [dict(reversed(pairs))], facts, "snowplow_i")  # the first of a name wins


def _answering(handler: Callable[[web.Request], Awaitable[dict[str, int]]], gif: bool) -> collector.Handler:
    """Refusals as answers the tracker understands: 400 (never 413: it would retry forever), 403,
    429 and 503 (retried, rightly); with the CORS headers, or the browser hides the status."""

    async def answer(request: web.Request) -> web.StreamResponse:
        status, headers = 200, _cors(request)
        try:
            body: dict[str, Any] = await handler(request)
        except Rejected as e:
            request.app[collector.METRICS].rejected[e.reason] += 1
            status, body = (400 if e.status == 413 else e.status), {"error": e.reason}
        except KafkaUnavailable:
            request.app[collector.METRICS].rejected["kafka_unavailable"] += 1
            status, body = 503, {"error": "kafka_unavailable"}
        if status in (429, 503):
            headers["Retry-After"] = "1" if status == 429 else "5"
        if not gif:
            return web.json_response(body, status=status, headers=headers)
        if "error" in body:
            headers["X-Seaport-Error"] = str(body["error"])
        return web.Response(
            body=collector.PIXEL, status=status, content_type="image/gif", headers={**collector.NO_CACHE, **headers}
        )

    return answer


async def preflight(request: web.Request) -> web.Response:
    if not collector._origin_allowed(request):
        request.app[collector.METRICS].rejected["origin_not_allowed"] += 1
        return web.json_response({"error": "origin_not_allowed"}, status=403)
    allow = {"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": ALLOW_HEADERS}
    return web.Response(status=204, headers={**_cors(request), **allow, "Access-Control-Max-Age": "600"})


def add_routes(app: web.Application) -> None:
    """The Snowplow endpoints and the page-leave ticker, on the collector's application."""
    try:
        idle_s = float(os.environ.get(IDLE_ENV, IDLE_DEFAULT_S))
    except ValueError:
        idle_s = -1.0
    if not 0 < idle_s < 86400:
        raise SeaportError(f"{IDLE_ENV} must be a number of seconds above 0")
    app[PAGE_LEAVES] = PageLeaves(idle_s)
    app.cleanup_ctx.append(_page_leave_ticker)
    app.router.add_post(POST_PATH, collector._timed("snowplow_tp2", _answering(post_events, gif=False)))
    app.router.add_get(GET_PATH, collector._timed("snowplow_i", _answering(get_event, gif=True)))
    for path in (POST_PATH, GET_PATH):
        app.router.add_route("OPTIONS", path, preflight)
