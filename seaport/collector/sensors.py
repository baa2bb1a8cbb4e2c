"""Sensors Data (神策) web SDK endpoints: `/sa` and `/sa.gif`, mapped onto `beacon/1`.

    sensors.init({server_url: 'https://collector.example.cn/sa?project=default', send_type: 'beacon'})

Wire format of sa-sdk-javascript 1.27 (see docs/collector.md): `data=<base64>&ext=crc%3D<n>` as
the image's query (`send_type: 'image'`), as a form body (`'ajax'`) or as a text/plain body
(`'beacon'`, sendBeacon); `batch_send` posts `data_list=<base64 of a JSON array>` without crc.
The base64 is of the UTF-8 JSON; `crc` is Java's `String.hashCode` of the base64 text; `gzip=1`
(the app SDKs) means the base64 is of gzip-compressed JSON; `gzip=9` or a `data` that is JSON
itself comes from the encryption plugins, which the collector can't read.

Page views, clicks and page leaves become beacons through `beacon_message` (the same validation,
consent and field policy as `/collect`); other events are acknowledged and not stored. The
cookies the SDK sets are never read; `distinct_id` is never used (it turns into the login id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from schemas import safejson
from schemas.models import NOT_AN_OBJECT, NOT_JSON, TOO_DEEP
from seaport.collector import app as collector
from seaport.collector.events import Message, Rejected, beacon_message, checked_batch
from seaport.collector.kafka_sink import KafkaUnavailable

ROUTES = ("/sa", "/sa.gif")
EVENTS = {"$pageview": "page_view", "$WebClick": "click", "$WebPageLeave": "page_leave"}
EVENTS |= {"$MPViewScreen": "page_view", "$MPClick": "click", "$MPPageLeave": "page_leave"}  # mini-programs
# The encryption plugins' envelopes: general/SM {pkv, ekey, payloads}, AES {key_id, key_hash, payload}.
ENCRYPTED_KEYS = frozenset({"pkv", "ekey", "payloads", "key_id", "key_hash", "payload"})
DEVICE = {"model": "$model", "os": "$os", "os_version": "$os_version"}
FORM_TYPES = ("application/x-www-form-urlencoded", "text/plain")  # ajax/batch; sendBeacon
MAX_DURATION_S = 7 * 24 * 3600  # beacon/1's bound on duration_ms
GZIP_FACTOR = 8  # decompressed payloads may be this many times --max-body-bytes


def java_hash(text: str) -> int:
    """Java's `String.hashCode` (the SDK's `hashCode`): over UTF-16 code units, signed 32 bits."""
    units = text.encode("utf-16-be", "surrogatepass")  # as charCodeAt: a lone surrogate too
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def decode_records(fields: Any, max_events: int, max_bytes: int) -> list[Any]:
    """The event records of one request's `data` (one object) or `data_list` (an array)."""
    many = "data_list" in fields
    data = fields.get("data_list" if many else "data")
    if not isinstance(data, str) or not data:
        raise Rejected(400, "missing_data")
    if fields.get("gzip") == "9" or data.lstrip()[:1] in ("{", "["):  # not base64: an encryption plugin's?
        _refuse_encrypted(data)
        raise Rejected(400, "bad_base64")
    data = data.replace(" ", "+")  # a '+' the client did not percent-encode arrived as a space
    crc = _crc(fields)
    if crc is not None and crc != java_hash(data):
        raise Rejected(400, "bad_crc")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(400, "bad_base64") from None
    if fields.get("gzip") == "1":
        raw = _gunzip(raw, max_bytes)
    try:
        decoded = safejson.loads(raw)
    except safejson.TooDeep:
        raise Rejected(400, TOO_DEEP) from None
    except UnicodeDecodeError:
        raise Rejected(400, "not_utf8") from None
    except ValueError:
        raise Rejected(400, NOT_JSON) from None
    if not many:
        if not isinstance(decoded, dict):
            raise Rejected(400, NOT_AN_OBJECT)
        return [decoded]
    return checked_batch(decoded, max_events)


def _crc(fields: Any) -> int | None:
    """`ext=crc=<n>` (the web SDK) or `crc=<n>` (the app SDKs); None when not sent."""
    value, ext = fields.get("crc"), fields.get("ext")
    if value is None and isinstance(ext, str) and ext.startswith("crc="):
        value = ext[4:].partition("&")[0]
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Rejected(400, "bad_crc") from None


def _refuse_encrypted(data: str) -> None:
    try:
        envelope = safejson.loads(data)
    except ValueError:
        return
    if isinstance(envelope, dict) and ENCRYPTED_KEYS & envelope.keys():
        raise Rejected(400, "encrypted_payload")


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    """Gzip-decompress at most `max_bytes` × GZIP_FACTOR: a bomb is refused, never inflated whole."""
    cap = max_bytes * GZIP_FACTOR
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    try:
        out = inflater.decompress(raw, cap + 1)
    except zlib.error:
        raise Rejected(400, "bad_gzip") from None
    if len(out) > cap:
        raise Rejected(413, "gzip_too_large")
    if not inflater.eof:
        raise Rejected(400, "bad_gzip")
    return out


def beacon_from_record(record: Any, login_id_is_openid: bool) -> dict[str, Any] | None:
    """One SDK record as a beacon/1 dict, or None for an event seaport does not store."""
    if not isinstance(record, dict):
        raise Rejected(400, NOT_AN_OBJECT)
    if ENCRYPTED_KEYS & record.keys():
        raise Rejected(400, "encrypted_payload")
    name = record.get("event")
    if not isinstance(name, str) or name not in EVENTS or record.get("type", "track") != "track":
        return None
    event = EVENTS[name]
    props = record.get("properties", {})
    if not isinstance(props, dict):
        raise Rejected(400, "wrong_type:properties")
    beacon: dict[str, Any] = {"schema": "beacon/1", "event": event, "page": _page(props)}
    beacon["event_id"] = _event_id(name, record)
    beacon["ts"] = _time(record.get("time"))
    beacon["anonymous_id"] = _anonymous_id(record)
    beacon["referrer"] = _text(props, "$referrer") or None
    if event == "click":
        beacon["element"] = next(
            (v for k in ("$element_id", "$element_content", "$element_selector") if (v := _text(props, k))), None
        )
    if event == "page_leave":
        seconds = props.get("event_duration")
        if seconds is None:
            return None  # the SDK drops the duration of a page left while hidden: nothing to count
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise Rejected(400, "wrong_type:properties.event_duration")
        if not 0 <= seconds <= MAX_DURATION_S:  # NaN and infinity too
            raise Rejected(400, "invalid:properties.event_duration")
        beacon["duration_ms"] = round(seconds * 1000)
    device = {f: v for f, k in DEVICE.items() if (v := _text(props, k))}
    login_id = _login_id(record) if login_id_is_openid else None
    beacon["device"] = device or None
    beacon["user"] = {"openid": login_id} if login_id else None  # else dropped: never guessed
    return {k: v for k, v in beacon.items() if v is not None}


def _text(props: dict[str, Any], key: str) -> str | None:
    value = props.get(key)
    if value is not None and not isinstance(value, str):
        raise Rejected(400, f"wrong_type:properties.{key}")
    return value


def _page(props: dict[str, Any]) -> str:
    """`$url` as path and query (the field policy redacts later); the mini-program SDK's `$url_path`."""
    url = _text(props, "$url")
    if url:
        try:
            parts = urlsplit(url)
        except ValueError:
            raise Rejected(400, "invalid:properties.$url") from None
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    path, query = _text(props, "$url_path"), _text(props, "$url_query")
    if not path:
        raise Rejected(400, "missing_field:properties.$url")
    return ("/" + path.lstrip("/")) + (f"?{query}" if query else "")


def _time(value: Any) -> str | None:
    if value is None:
        return None  # the receive time
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(400, "wrong_type:time")
    try:
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise Rejected(400, "invalid:time") from None


def _event_id(name: str, record: dict[str, Any]) -> str | None:
    """Stable across retries, from the SDK's own per-event fields (never an identifier, nor
    `_flush_time`, which a resend renews): a retried record is the same event to the pipeline."""
    track_id, ts = record.get("_track_id"), record.get("time")
    if isinstance(track_id, bool) or not isinstance(track_id, int | str) or not track_id:
        return None  # a fresh uuid4, from stamp_beacon
    material = f"sa\x1f{name}\x1f{track_id}\x1f{ts!r}".encode()
    return "sa-" + hashlib.sha256(material).hexdigest()[:32]


def _anonymous_id(record: dict[str, Any]) -> Any:
    """The SDK's anonymous id (its first-visit time and user-agent hash make it an identifier too)."""
    ids = record["identities"] if isinstance(record.get("identities"), dict) else {}
    # a wrong type is refused by the model
    return record.get("anonymous_id") or ids.get("$identity_anonymous_id") or ids.get("$identity_cookie_id") or None


def _login_id(record: dict[str, Any]) -> str | None:
    """`login_id` as `login()` set it; `loginWithKey(key, id)` sends `key+id` with `identities[key] = id`."""
    login_id = record.get("login_id")
    if not isinstance(login_id, str) or not login_id:
        return None
    key, _, value = login_id.partition("+")
    identities = record.get("identities")
    if value and isinstance(identities, dict) and identities.get(key) == value:
        return value
    return login_id


# --- HTTP ------------------------------------------------------------------------------------


async def _messages(request: web.Request) -> tuple[list[Message], int, int]:
    """The request's beacons, and how many records were ignored (not stored) and refused.

    A batch keeps its valid records and counts the refused ones (the SDK would resend a refused
    batch forever); only when every record is refused is the request refused, with the first reason."""
    limits = request.app[collector.LIMITS]
    facts = collector.request_facts(request)  # no cookie: the SDK's cookies are never read
    collector._check_caller(request, facts.client_ip)
    if request.method == "GET":
        fields: Any = request.query
    else:
        collector._check_content_type(request, FORM_TYPES)
        try:
            fields = dict(reversed(parse_qsl((await collector._body(request)).decode(), max_num_fields=16)))
        except ValueError:  # UnicodeDecodeError, too many fields
            raise Rejected(400, "not_a_form") from None
    records = decode_records(fields, limits.max_events, limits.max_body_bytes)
    messages: list[Message] = []
    refused: list[Rejected] = []
    for index, record in enumerate(records):
        try:
            event = beacon_from_record(record, limits.login_id_is_openid)
            if event is not None:
                messages.append(beacon_message(event, facts))
        except Rejected as e:
            refused.append(Rejected(e.status, e.reason, index))
    if len(refused) == len(records):
        raise refused[0]
    for refusal in refused:
        request.app[collector.METRICS].rejected[refusal.reason] += 1
    if messages:
        await collector._produce(request, "beacons.raw", "sensors", messages)
    return messages, len(records) - len(messages) - len(refused), len(refused)


def _credentials(request: web.Request) -> dict[str, str]:
    """The SDK may post with `withCredentials`: an allowed origin is answered with credentials."""
    allowed = "Origin" in request.headers and collector._origin_allowed(request)
    return {"Access-Control-Allow-Credentials": "true"} if allowed else {}


async def sensors_get(request: web.Request) -> web.Response:
    """GET: the image mode; always the GIF, the status and `X-Seaport-Error` tell what happened."""
    status, reason = 200, ""
    try:
        await _messages(request)
    except Rejected as e:
        request.app[collector.METRICS].rejected[e.reason] += 1
        status, reason = e.status, e.reason
    except KafkaUnavailable:
        request.app[collector.METRICS].rejected["kafka_unavailable"] += 1
        status, reason = 503, "kafka_unavailable"
    headers = {
        **collector.NO_CACHE,
        **collector._cors_headers(request),
        **({"X-Seaport-Error": reason} if reason else {}),
    }
    return web.Response(body=collector.PIXEL, status=status, content_type="image/gif", headers=headers)


async def sensors_post(request: web.Request) -> web.Response:
    """POST: ajax (`data=`), batch (`data_list=`) or sendBeacon (text/plain)."""
    try:
        messages, ignored, refused = await _messages(request)
    except Rejected as e:
        answer = collector._rejection(request, e)
    except KafkaUnavailable:
        answer = collector._unavailable(request)
    else:
        body = {"accepted": len(messages), "ignored": ignored, "rejected": refused}
        answer = web.json_response(body, headers=collector._cors_headers(request))
    answer.headers.update(_credentials(request))
    return answer


async def sensors_preflight(request: web.Request) -> web.Response:
    answer = await collector.preflight(request)
    if answer.status == 204:
        answer.headers.update(_credentials(request))
    return answer


def add_routes(app: web.Application) -> None:
    """`/sa` and `/sa.gif` (the SDK rewrites `/sa` to `/sa.gif`), fixed paths: the access log
    names the route, never the query that carries the data."""
    for path in ROUTES:
        app.router.add_get(path, collector._timed("sensors", sensors_get), allow_head=False)
        app.router.add_post(path, collector._timed("sensors", sensors_post))
        app.router.add_route("OPTIONS", path, sensors_preflight)
