"""`seaport simulate`: realistic, seeded traffic for the insurer's web and WeChat platform.

Generates beacons (page views, clicks, page leaves, mini-program launches), access logs, consent
changes and erasure requests for many visitors over several days, with the faults a real feed has:
exact duplicates, late events, malformed messages of every kind, personal data leaking into query
strings. Same arguments, same bytes. Attacks, labelled, come from `--attacks` (seaport/devtools/attacks.py):
unlabelled ones here would count as false findings in `seaport eval security`.

    seaport simulate --users 200 --days 1 --seed 1 --out traffic.jsonl    # one file per topic
    seaport simulate --users 200 --days 1 --bootstrap 127.0.0.1:9092      # straight to Kafka

Every identifier (openid, MAC, IP, phone, e-mail…) is made up at run time from the seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from seaport.errors import SeaportError

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

BEACONS, ACCESS_LOGS, CONSENT, ERASURES = (
    "beacons.raw",
    "access_logs.raw",
    "consent.events",
    "erasure.requests",
)

# Share of visits per local hour in Asia/Shanghai: quiet nights, busy office hours and evenings.
HOURLY_WEIGHTS = [3, 2, 1, 1, 1, 2, 4, 8, 12, 14, 13, 11, 9, 10, 12, 12, 11, 10, 11, 13, 14, 12, 8, 5]

# path -> (weight, clickable elements: button ids and link texts)
PAGES: dict[str, tuple[int, list[str]]] = {
    "/home": (12, ["banner-health", "nav-policy", "nav-claims", "btn-login", "link:热销产品"]),
    "/policy/query": (8, ["btn-query", "link:保单详情", "btn-download-epolicy"]),
    "/policy/list?status=active": (4, ["link:保单详情", "btn-renew"]),
    "/claims/new": (5, ["btn-upload-invoice", "btn-submit-claim", "link:理赔须知"]),
    "/claims/status": (5, ["btn-refresh", "link:联系理赔员"]),
    "/products/health": (7, ["btn-buy-now", "tab-plans", "link:保障详情"]),
    "/products/auto": (3, ["btn-get-quote", "link:车险条款"]),
    "/products/auto?tab=compare": (4, ["tab-compare", "btn-get-quote"]),
    "/products/travel?dest=JP&days=7": (2, ["btn-buy-now", "link:签证须知"]),
    "/service/contact": (3, ["btn-call-95500", "btn-online-chat"]),
    "/service/faq?q=%E7%90%86%E8%B5%94": (2, ["link:如何报案", "link:理赔时效"]),
    "/search?q=%E9%87%8D%E7%96%BE%E9%99%A9": (2, ["link:搜索结果"]),
    "/user/profile": (3, ["btn-edit-profile", "btn-logout"]),
    "/login": (3, ["btn-login", "btn-wechat-login"]),
}
PAGE_PATHS = list(PAGES)
PAGE_WEIGHTS = [w for w, _ in PAGES.values()]
# The API call a click sends, where it sends one.
CLICK_API = {
    "btn-query": ("POST", "/api/policy/query"),
    "btn-submit-claim": ("POST", "/api/claims"),
    "btn-upload-invoice": ("POST", "/api/claims/invoice"),
    "btn-login": ("POST", "/api/login"),
    "btn-wechat-login": ("POST", "/api/login/wechat"),
    "btn-get-quote": ("POST", "/api/quote/auto"),
    "btn-refresh": ("GET", "/api/claims/status"),
    "btn-download-epolicy": ("GET", "/api/policy/epolicy.pdf"),
}
EXTERNAL_REFERRERS = ["https://www.baidu.com/", "https://m.sogou.com/", "https://www.so.com/", None, None]

IOS_MODELS = [
    "iPhone15,2",
    "iPhone15,3",
    "iPhone14,5",
    "iPhone14,2",
    "iPhone16,1",
    "iPhone16,2",
    "iPhone13,2",
]
IOS_VERSIONS = ["17.1.2", "17.2", "17.0.3", "16.6.1", "16.7.2"]
ANDROID_MODELS = [
    ("Xiaomi 2211133C", "Android", ["13", "14"]),
    ("Redmi 23013RK75C", "Android", ["13"]),
    ("HUAWEI ALN-AL00", "HarmonyOS", ["4.0.0"]),
    ("HUAWEI NOH-AN00", "HarmonyOS", ["3.0.0", "4.0.0"]),
    ("OPPO PHB110", "Android", ["13", "14"]),
    ("vivo V2309A", "Android", ["14"]),
    ("HONOR PGT-AN10", "Android", ["13"]),
    ("Samsung SM-S9180", "Android", ["14"]),
]
MAC_PREFIXES = {
    "iPhone": ["f0:18:98", "3c:22:fb", "a4:83:e7"],
    "Xiaomi": ["64:09:80", "28:6c:07"],
    "Redmi": ["64:09:80"],
    "HUAWEI": ["00:e0:fc", "48:db:50"],
    "OPPO": ["a4:3d:78", "2c:5b:b8"],
    "vivo": ["a8:9c:ed"],
    "HONOR": ["04:f1:69"],
    "Samsung": ["8c:f5:a3"],
}
CHINA_FIRST_OCTETS = [36, 39, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117, 119, 120]
CHINA_FIRST_OCTETS += [
    121,
    122,
    123,
    124,
    125,
    175,
    180,
    182,
    183,
    202,
    210,
    211,
    218,
    219,
    220,
    221,
    222,
    223,
]
CITIES = [("Shanghai", 20), ("Beijing", 14), ("Guangzhou", 10), ("Shenzhen", 10), ("Hangzhou", 7)]
CITIES += [("Chengdu", 6), ("Wuhan", 5), ("Nanjing", 5), ("Chongqing", 4), ("Xi'an", 3), ("Suzhou", 3)]
CITIES += [("Tianjin", 3), ("Changsha", 2), ("Qingdao", 2), ("Xiamen", 2), ("Kunming", 1), ("Harbin", 1)]
NICK_HEADS = ["小", "阿", "老", "大", "Sunny", "Leo", "Coco", "静", "晴天", "快乐的"]
NICK_TAILS = ["明", "红", "强", "丽", "飞鱼", "猫", "橙子", "小熊", "Amy", "星星", "木木", "阳光"]
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass
class Traffic:
    """A run's messages per topic, each a JSON-lines payload as it goes to Kafka."""

    beacons: list[bytes]
    access_logs: list[bytes]
    consent: list[bytes]
    erasures: list[bytes]
    # topic -> how many of its messages are deliberately malformed (they must not validate)
    malformed: dict[str, int] = field(default_factory=dict)

    def by_topic(self) -> dict[str, list[bytes]]:
        """Messages by contract topic name (unprefixed)."""
        return {
            BEACONS: self.beacons,
            ACCESS_LOGS: self.access_logs,
            CONSENT: self.consent,
            ERASURES: self.erasures,
        }


@dataclass
class Visitor:
    """One person behind a browser or the mini-program, with what their client sends."""

    anonymous_id: str
    channel: str  # miniprogram | wechat_h5 | browser
    device: dict | None
    ip: str
    user_agent: str
    user: dict | None  # the WeChat profile, sent once signed in
    anonymous_pages: int  # pages viewed before signing in
    opt_out: bool  # sends Sec-GPC / DNT
    activity: float  # chance of visiting on a given day
    pages: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def openid(self) -> str | None:
        return self.user["openid"] if self.user else None

    @property
    def signed_in(self) -> bool:
        return self.user is not None and self.pages > self.anonymous_pages

    def seen(self, ms: int) -> None:
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)


# --- identifiers, made up from the seed -------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _wechat_id(rng: random.Random) -> str:
    """A WeChat openid / unionid: 28 characters starting with 'o'."""
    return "o" + "".join(rng.choice(ID_CHARS) for _ in range(27))


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return f"240e:{_hex(rng, 3)}:{_hex(rng, 4)}:{_hex(rng, 4)}::{_hex(rng, 3)}"
    return f"{rng.choice(CHINA_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _mac(rng: random.Random, model: str) -> str:
    prefix = rng.choice(MAC_PREFIXES.get(model.split()[0].rstrip("0123456789,"), ["00:1a:2b"]))
    return prefix + "".join(f":{rng.randrange(256):02x}" for _ in range(3))


def _phone(rng: random.Random) -> str:
    return rng.choice(["138", "139", "150", "186", "188", "199", "177"]) + f"{rng.randrange(10**8):08d}"


def _email(rng: random.Random) -> str:
    local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(6, 10)))
    return f"{local}@{rng.choice(['qq.com', '163.com', '126.com'])}"


# --- visitors ---------------------------------------------------------------------------------------


def _device_and_agent(rng: random.Random, channel: str) -> tuple[dict | None, str]:
    """A real device model with its OS, and the user agent its client sends."""
    if channel == "browser" and rng.random() < 0.4:
        chrome = f"{rng.choice([118, 119, 120])}.0.0.0"
        agent = f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}"
        return ({"os": "Windows", "os_version": "10"} if rng.random() < 0.8 else None), agent + " Safari/537.36"
    if rng.random() < 0.45:
        model, os_name, version = (rng.choice(IOS_MODELS), "iOS", rng.choice(IOS_VERSIONS))
        webkit = f"Mozilla/5.0 (iPhone; CPU iPhone OS {version.replace('.', '_')} like Mac OS X) AppleWebKit/605.1.15"
        if channel == "browser":
            agent = f"{webkit} (KHTML, like Gecko) Version/{version[:4]} Mobile/15E148 Safari/604.1"
        else:
            agent = f"{webkit} (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2f) NetType/WIFI Language/zh_CN"
    else:
        model, os_name, versions = rng.choice(ANDROID_MODELS)
        version = rng.choice(versions)
        android = version if os_name == "Android" else "12"
        base = (
            f"Mozilla/5.0 (Linux; Android {android}; {model.split()[1]} Build/TKQ1.220905.001; wv) AppleWebKit/537.36"
        )
        if channel == "browser":
            agent = f"{base} (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36"
        else:
            agent = (
                f"{base} (KHTML, like Gecko) Version/4.0 Chrome/111.0.5563.116 Mobile Safari/537.36 XWEB/5235 "
                "MicroMessenger/8.0.42.2460(0x28002A3B) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
            )
    if channel == "miniprogram":
        agent += " miniProgram"
    device = {"model": model, "os": os_name, "os_version": version}
    if channel == "miniprogram":  # only the mini-program SDK reads the MAC address
        device["mac"] = _mac(rng, model)
    return device, agent


def _wechat_profile(rng: random.Random) -> dict:
    """A signed-in visitor's WeChat profile; any field but openid may be missing."""
    profile = {
        "openid": _wechat_id(rng),
        "unionid": _wechat_id(rng),
        "nickname": rng.choice(NICK_HEADS)
        + rng.choice(NICK_TAILS)
        + (str(rng.randrange(100)) if rng.random() < 0.3 else ""),
        "avatar_url": f"https://thirdwx.qlogo.cn/mmopen/vi_32/{''.join(rng.choice(ID_CHARS) for _ in range(64))}/132",
        "gender": rng.choices(["female", "male", "unknown"], [48, 46, 6])[0],
        "country": rng.choices(["CN", "HK", "SG", "US"], [96, 2, 1, 1])[0],
        "city": rng.choices([c for c, _ in CITIES], [w for _, w in CITIES])[0],
        "language": rng.choices(["zh_CN", "zh_TW", "en"], [90, 5, 5])[0],
    }
    for name in ["unionid", "nickname", "avatar_url", "gender", "city", "language"]:
        if rng.random() < (0.2 if name == "unionid" else 0.04):
            del profile[name]
    return profile


def _make_visitor(rng: random.Random) -> Visitor:
    channel = rng.choices(["miniprogram", "wechat_h5", "browser"], [45, 30, 25])[0]
    device, agent = _device_and_agent(rng, channel)
    signs_in = rng.random() < {"miniprogram": 0.85, "wechat_h5": 0.6, "browser": 0.2}[channel]
    return Visitor(
        anonymous_id="c-" + _hex(rng, 16),
        channel=channel,
        device=device,
        ip=_ip(rng),
        user_agent=agent,
        user=_wechat_profile(rng) if signs_in else None,
        anonymous_pages=rng.choice([0, 0, 0, 1, 2]) if signs_in else 0,
        opt_out=channel == "browser" and rng.random() < 0.1,
        activity=rng.choice([0.3, 0.6, 0.9]),
    )


def make_visitors(rng: random.Random, users: int) -> list[Visitor]:
    """`users` visitors; a few families share one anonymous id (a shared phone) before signing in."""
    visitors = [_make_visitor(rng) for _ in range(users)]
    late_signers = [v for v in visitors if v.user and v.channel != "miniprogram"]
    for i in range(0, len(late_signers) // 10 * 3 - 2, 3):
        group = late_signers[i : i + rng.choice([2, 3])]
        for v in group:
            v.anonymous_id, v.channel, v.device = group[0].anonymous_id, group[0].channel, group[0].device
            v.user_agent, v.anonymous_pages, v.activity = group[0].user_agent, rng.randint(1, 2), 0.9
    return visitors


# --- sessions ---------------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, as clients send it: 2026-11-24T08:15:30.123Z."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


def _day_start_ms(day: date) -> int:
    """Midnight in Asia/Shanghai of `day`, in epoch milliseconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).timestamp()) * SECOND


def _visit_start(rng: random.Random, day_ms: int) -> int:
    hour = rng.choices(range(24), HOURLY_WEIGHTS)[0]
    return day_ms + hour * HOUR + rng.randrange(HOUR)


def _page_with_query(rng: random.Random) -> tuple[str, str]:
    """A weighted page and its URL; a few carry a phone number or an e-mail in the query (a leak to catch)."""
    page = url = rng.choices(PAGE_PATHS, PAGE_WEIGHTS)[0]
    if page in ("/service/contact", "/claims/status", "/login") and rng.random() < 0.04:
        leak = f"phone={_phone(rng)}" if rng.random() < 0.6 else f"email={_email(rng)}"
        url += ("&" if "?" in page else "?") + leak
    return page, url


class Recorder:
    """Collects the events and access logs of a run, each with its arrival time at the collector."""

    def __init__(self, rng: random.Random, late_rate: float) -> None:
        self.rng, self.late_rate = rng, late_rate
        self.beacons: list[tuple[int, int, dict]] = []
        self.access_logs: list[tuple[int, int, dict]] = []

    def beacon(self, v: Visitor, ms: int, event: str, page: str, session_id: str, **fields: object) -> None:
        """R13: a tracking event with the identifiers a pixel or SDK carries."""
        rng = self.rng
        delay = rng.randrange(50, 2 * SECOND)
        if rng.random() < self.late_rate:  # a phone offline for hours, flushing its queue later
            delay = rng.randrange(HOUR, 26 * HOUR)
        msg: dict = {"schema": "beacon/1", "event_id": _uuid(rng), "event": event, "ts": _iso(ms)}
        msg.update(anonymous_id=v.anonymous_id, session_id=session_id, page=page)
        msg.update(referrer=fields.get("referrer"), element=fields.get("element"))
        msg["duration_ms"] = fields.get("duration_ms")
        if v.signed_in:
            msg["user"] = v.user
        if v.device:
            msg["device"] = v.device
        if v.channel != "browser" or rng.random() < 0.95:
            msg["network"] = {"ip": fields.get("ip") or v.ip, "user_agent": v.user_agent}
        msg["received_at"] = _iso(ms + delay)
        if v.opt_out:
            msg["opt_out"] = True
        v.seen(ms)
        self.beacons.append((ms + delay, len(self.beacons), msg))

    def access(self, ms: int, ip: str, method: str, path: str, status: int, **fields: object) -> None:
        rng = self.rng
        msg = {
            "schema": "access/1",
            "ts": _iso(ms),
            "ip": ip,
            "method": method,
            "path": path,
            "status": status,
        }
        msg["bytes"] = 0 if status in (304, 401) else rng.randrange(300, 90_000)
        msg["duration_ms"] = rng.randrange(3, 40) if status == 401 else int(rng.lognormvariate(4, 0.8))
        msg.update(user_agent=fields.get("user_agent"), referrer=fields.get("referrer"))
        if fields.get("openid"):
            msg["openid"] = fields["openid"]
        self.access_logs.append((ms, len(self.access_logs), msg))


def _status(rng: random.Random) -> int:
    return rng.choices([200, 304, 404, 403, 500, 502, 503], [880, 70, 30, 5, 8, 4, 3])[0]


def record_session(rec: Recorder, v: Visitor, start_ms: int, max_pages: int = 12, ip: str | None = None) -> None:
    """A visit: an app launch in the mini-program, then page views, clicks and page leaves.

    A visitor who signs in does so after `anonymous_pages` pages; from then on beacons carry the
    WeChat profile and access logs the openid."""
    rng = rec.rng
    session_id = "s-" + _hex(rng, 12)
    ip = ip or v.ip
    ms = start_ms
    if v.channel == "miniprogram":
        rec.beacon(v, ms, "app_launch", "/home", session_id, ip=ip)
        ms += rng.randrange(300, 3 * SECOND)
    pages = 1 if rng.random() < 0.3 else min(max_pages, 2 + int(rng.expovariate(0.35)))
    referrer = rng.choice(EXTERNAL_REFERRERS) if v.channel != "miniprogram" else None
    for _ in range(pages):
        v.pages += 1
        page, url = _page_with_query(rng)
        request = {"user_agent": v.user_agent, "openid": v.openid if v.signed_in else None}
        rec.access(ms - rng.randrange(30, 300), ip, "GET", url, _status(rng), referrer=referrer, **request)
        rec.beacon(v, ms, "page_view", url, session_id, referrer=referrer, ip=ip)
        stay = min(30 * MINUTE, int(rng.lognormvariate(9.9, 1.0)))  # median about 20 s
        for _ in range(rng.choices([0, 1, 2, 3], [35, 40, 18, 7])[0]):
            at = ms + rng.randrange(max(1, stay))
            element = rng.choice(PAGES[page][1])
            rec.beacon(v, at, "click", url, session_id, element=element, referrer=referrer, ip=ip)
            if element in CLICK_API:
                method, path = CLICK_API[element]
                rec.access(at + rng.randrange(5, 80), ip, method, path, _status(rng), referrer=url, **request)
        ms += stay
        rec.beacon(v, ms, "page_leave", url, session_id, duration_ms=stay, referrer=referrer, ip=ip)
        referrer = url
        ms += rng.randrange(500, 3 * SECOND)


# --- consent and erasure ----------------------------------------------------------------------------


def _consent(ms: int, subject: dict, analytics: str, minor: bool = False, guardian: bool | None = None) -> dict:
    return {
        "schema": "consent/1",
        "ts": _iso(ms),
        "subject": subject,
        "analytics": analytics,
        "minor": minor,
        "guardian_consent": guardian,
    }


# Consent histories, spread in these proportions over signed-in visitors (R2, R3).
CONSENT_PLANS = ["before"] * 11 + ["after_some", "after_some", "withdrawn", "withdrawn", "regranted"]
CONSENT_PLANS += ["after_all", "none", "none", "before"]


def consent_changes(rng: random.Random, visitors: list[Visitor], start_ms: int, end_ms: int) -> list[dict]:
    """Grants and withdrawals, some before, some amid, some after a subject's events; a few minors (R9)."""
    changes: list[dict] = []
    signed_in = [v for v in visitors if v.user]
    order = rng.sample(range(len(signed_in)), len(signed_in))
    for rank, i in enumerate(order):
        v = signed_in[i]
        subject = {"openid": v.openid}
        first, last = v.first_ms or start_ms, v.last_ms or end_ms
        mid = first + (last - first) // 2
        early = first - rng.randrange(HOUR, 90 * DAY)
        if rank < max(3, len(signed_in) // 40):  # minors: with, without and unknown guardian consent
            changes.append(_consent(early, subject, "granted", True, [True, False, None][rank % 3]))
            continue
        plan = CONSENT_PLANS[rank % len(CONSENT_PLANS)]
        if plan in ("before", "withdrawn", "regranted"):
            changes.append(_consent(early, subject, "granted"))
        if plan == "after_some":
            changes.append(_consent(mid, subject, "granted"))
        if plan in ("withdrawn", "regranted"):
            changes.append(_consent(mid, subject, "withdrawn"))
        if plan == "regranted":
            changes.append(_consent(mid + (last - mid) // 2 + 1, subject, "granted"))
        if plan == "after_all":
            changes.append(_consent(last + rng.randrange(MINUTE, HOUR), subject, "granted"))
    for v in visitors:  # the cookie banner: some anonymous visitors accept analytics
        if v.user is None and v.first_ms is not None and rng.random() < 0.4:
            changes.append(
                _consent(
                    v.first_ms - rng.randrange(SECOND, 10 * SECOND),
                    {"anonymous_id": v.anonymous_id},
                    "granted",
                )
            )
            if rng.random() < 0.1:
                changes.append(_consent(v.last_ms or end_ms, {"anonymous_id": v.anonymous_id}, "withdrawn"))
    return sorted(changes, key=lambda c: c["ts"])


def erasure_requests(rng: random.Random, visitors: list[Visitor], end_ms: int) -> list[dict]:
    """R8: a few subjects ask to be erased, near the end of the run (one per 100 visitors)."""
    wanted = len(visitors) // 100
    candidates = [v for v in visitors if v.first_ms is not None]
    chosen = rng.sample(candidates, min(wanted, len(candidates)))
    requests = []
    for v in chosen:
        subject = {"openid": v.openid} if v.openid else {"anonymous_id": v.anonymous_id}
        ts = _iso(end_ms - rng.randrange(HOUR, 6 * HOUR))
        requests.append({"schema": "erasure/1", "ts": ts, "subject": subject, "request_id": _uuid(rng)})
    return sorted(requests, key=lambda r: r["ts"])


# --- faults: duplicates and malformed messages -----------------------------------------------------


def _dumps(msg: object) -> bytes:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()


def malformed_beacon(kind: str, msg: dict) -> bytes:
    """One deliberately bad beacon of the given kind, built from a good one."""
    bad = dict(msg)
    if kind == "not_json":
        return b"<html><body>502 Bad Gateway</body></html>"
    if kind == "not_utf8":
        return b'{"schema":"beacon/1","page":"/home\xff\xfe"}'
    if kind == "truncated":
        whole = _dumps(msg)
        return whole[: len(whole) // 2]
    if kind == "array":
        return _dumps([msg])
    if kind == "empty":
        return b"{}"
    if kind == "wrong_schema":
        bad["schema"] = "beacon/0"
    elif kind == "missing_field":
        del bad["event_id"]
    elif kind == "wrong_type":
        bad["duration_ms"] = "long"
    elif kind == "naive_ts":
        bad["ts"] = bad["ts"].rstrip("Z")
    elif kind == "click_without_element":
        bad.update(event="click", element=None)
    elif kind == "unknown_event":
        bad["event"] = "scroll"
    elif kind == "oversize":  # an unknown field is ignored by the model: only the size check can catch it
        bad["blob"] = "x" * (65 * 1024)
    return _dumps(bad)


MALFORMED_BEACON_KINDS = ["not_json", "truncated", "array", "wrong_schema", "missing_field", "wrong_type"]
MALFORMED_BEACON_KINDS += [
    "naive_ts",
    "click_without_element",
    "oversize",
    "empty",
    "not_utf8",
    "unknown_event",
]


def malformed_access_log(kind: str, msg: dict) -> bytes:
    bad = dict(msg)
    if kind == "not_json":
        return b'127.0.0.1 - - [24/Nov/2026:08:15:30 +0800] "GET / HTTP/1.1" 200'
    if kind == "missing_field":
        del bad["path"]
    elif kind == "wrong_type":
        bad["status"] = "ok"
    elif kind == "naive_ts":
        bad["ts"] = bad["ts"].rstrip("Z")
    return _dumps(bad)


MALFORMED_ACCESS_KINDS = ["not_json", "missing_field", "wrong_type", "naive_ts"]


def _with_faults(
    rng: random.Random,
    records: list[tuple[int, int, dict]],
    kinds: list[str],
    make_bad: object,
    malformed_rate: float,
    duplicate_rate: float,
) -> tuple[list[bytes], int]:
    """Serialize in arrival order, re-send some messages as they are, and slip in malformed ones."""
    arrivals = [(at, seq, _dumps(msg)) for at, seq, msg in records]
    originals = list(arrivals)
    for at, seq, payload in rng.sample(originals, round(duplicate_rate * len(originals))):
        arrivals.append((at + rng.randrange(SECOND, 10 * MINUTE), seq, payload))  # a client retry
    n_bad = round(malformed_rate * len(originals))
    for i in range(n_bad):
        at, seq, _ = rng.choice(originals)
        source = records[seq][2]
        arrivals.append((at, seq, make_bad(kinds[i % len(kinds)], source)))  # type: ignore[operator]
    arrivals.sort(key=lambda a: (a[0], a[1]))
    return [payload for _, _, payload in arrivals], n_bad


# --- the API ----------------------------------------------------------------------------------------


def _check_rates(**rates: float) -> None:
    for name, rate in rates.items():
        if not 0 <= rate < 1:
            raise SeaportError(f"--{name.replace('_', '-')} must be at least 0 and below 1, got {rate}")


def simulate(
    users: int,
    days: int,
    seed: int,
    start: date,
    malformed_rate: float = 0.01,
    duplicate_rate: float = 0.01,
    late_rate: float = 0.02,
) -> Traffic:
    """Realistic traffic of `users` visitors over `days` days from `start` (Asia/Shanghai); deterministic."""
    if users < 1 or days < 1:
        raise SeaportError("--users and --days must be at least 1")
    _check_rates(malformed_rate=malformed_rate, duplicate_rate=duplicate_rate, late_rate=late_rate)
    rng = random.Random(seed)
    visitors = make_visitors(rng, users)
    rec = Recorder(rng, late_rate)
    first_day_ms = _day_start_ms(start)
    for d in range(days):
        day_ms = _day_start_ms(start + timedelta(days=d))
        for v in visitors:
            if rng.random() < v.activity:
                for _ in range(rng.choices([1, 2, 3], [70, 22, 8])[0]):
                    record_session(rec, v, _visit_start(rng, day_ms))
    end_ms = _day_start_ms(start + timedelta(days=days))
    consent = consent_changes(rng, visitors, first_day_ms, end_ms)
    erasures = erasure_requests(rng, visitors, end_ms)
    beacons, bad_beacons = _with_faults(
        rng, rec.beacons, MALFORMED_BEACON_KINDS, malformed_beacon, malformed_rate, duplicate_rate
    )
    access_logs, bad_logs = _with_faults(
        rng, rec.access_logs, MALFORMED_ACCESS_KINDS, malformed_access_log, malformed_rate, 0
    )
    return Traffic(
        beacons=beacons,
        access_logs=access_logs,
        consent=[_dumps(c) for c in consent],
        erasures=[_dumps(e) for e in erasures],
        malformed={BEACONS: bad_beacons, ACCESS_LOGS: bad_logs, CONSENT: 0, ERASURES: 0},
    )


# --- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from seaport.options import add_kafka_options, add_prefix_option

    parser.description = (
        "Generate realistic, seeded traffic (beacons, access logs, consent changes, erasure requests) "
        "into one JSON-lines file per topic (--out) or straight to Kafka. Same arguments, same bytes."
    )
    parser.add_argument("--users", type=int, default=200, help="number of visitors (default: %(default)s)")
    parser.add_argument("--days", type=int, default=1, help="number of days (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="first day (default: yesterday in Asia/Shanghai)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the beacons to FILE and the other topics beside it (traffic.jsonl -> "
        "traffic.access_logs.raw.jsonl, traffic.consent.events.jsonl…) instead of sending to Kafka",
    )
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=0.01,
        help="share of malformed messages (default: %(default)s)",
    )
    parser.add_argument(
        "--duplicate-rate", type=float, default=0.01, help="share of beacons re-sent (default: %(default)s)"
    )
    parser.add_argument(
        "--late-rate",
        type=float,
        default=0.02,
        help="share of beacons arriving hours late (default: %(default)s)",
    )
    parser.add_argument(
        "--attacks",
        action="store_true",
        help="quiet days, then a last day of labelled attacks and legitimate look-alikes (seaport/devtools/attacks.py); "
        "with --out the labels go to FILE's .labels.json beside it, never to Kafka",
    )
    add_prefix_option(parser)
    add_kafka_options(parser)


def out_paths(out: Path) -> dict[str, Path]:
    """FILE itself holds the beacons (so `seaport produce --topic beacons.raw FILE` works); the
    other topics go beside it: traffic.jsonl -> traffic.access_logs.raw.jsonl, …"""
    stem = out.with_suffix("") if out.suffix == ".jsonl" else out
    others = {topic: stem.with_name(f"{stem.name}.{topic}.jsonl") for topic in (ACCESS_LOGS, CONSENT, ERASURES)}
    return {BEACONS: out, **others}


def write_files(traffic: Traffic, out: Path) -> dict[Path, int]:
    """One JSON-lines file per topic that has messages; returns path -> line count."""
    written = {}
    for topic, path in out_paths(out).items():
        lines = traffic.by_topic()[topic]
        if not lines and topic == ERASURES:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        written[path] = len(lines)
    return written


def send_to_kafka(traffic: Traffic, args: argparse.Namespace, chunk: int = 20_000) -> None:
    """Consent first, so the pipeline knows a subject's consent before its events arrive."""
    from seaport.kafka.clients import make_client
    from seaport.kafka.topics import create_topics, message_key, topic_name
    from seaport.progress import Progress

    create_topics(args.bootstrap, args.topic_prefix, args.kafka_client)
    client = make_client(args.kafka_client, args.bootstrap)
    try:
        for topic in (CONSENT, ERASURES, BEACONS, ACCESS_LOGS):
            lines = traffic.by_topic()[topic]
            name = topic_name(topic, args.topic_prefix)
            with Progress(f"sending {name}", total=len(lines)) as bar:
                for at in range(0, len(lines), chunk):
                    part = lines[at : at + chunk]
                    client.produce(name, [(message_key(topic, p), p) for p in part])
                    bar.update(len(part))
            print(f"{name}: {len(lines)} messages sent")
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    start = args.start or datetime.now(SHANGHAI).date() - timedelta(days=1)
    if args.users * args.days >= 10_000:  # about a second per 1,500 visitor-days: say what is going on
        print(f"simulating {args.users} users over {args.days} days from {start}…", file=sys.stderr)
    scenarios = None
    if args.attacks:
        from seaport.devtools.attacks import simulate_attacks

        traffic, scenarios = simulate_attacks(args.users, args.days, args.seed, start)
    else:
        traffic = simulate(
            args.users, args.days, args.seed, start, args.malformed_rate, args.duplicate_rate, args.late_rate
        )
    if args.out is not None:
        try:
            for path, count in write_files(traffic, args.out).items():
                print(f"{path}\t{count} lines")
            if scenarios is not None:
                from seaport.devtools.attacks import labels_path, write_labels

                write_labels(scenarios, labels_path(args.out))
                print(f"{labels_path(args.out)}\t{len(scenarios)} labelled scenarios")
        except OSError as e:
            raise SeaportError(f"cannot write {e.filename}: {e.strerror}") from None
        return 0
    send_to_kafka(traffic, args)
    return 0
