"""Personal data inside free text: find it, replace it by a marker, count it (R4, R13, R14).

Pages, referrers, click labels and access-log paths can carry phone numbers, resident ID
numbers, e-mail addresses, bank cards, OpenIds, MACs and IP addresses, also URL-encoded. They
are replaced by `[phone]`, `[id_number]`, `[email]`, `[bank_card]`, `[openid]`, `[mac]`, `[ip]`
(and `[name]`, `[token]` for values of query keys that name personal data) before anything is
stored. The same detectors drive `seaport audit`, so what redaction removes is what the audit
looks for.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from schemas import safejson

# Query parameters kept in an analytics page dimension (their values still redacted).
PAGE_QUERY_ALLOW = frozenset({"utm_source", "utm_medium", "utm_campaign", "tab", "lang"})

# Query keys whose value is personal whatever its shape -> the marker it becomes.
SENSITIVE_QUERY_KEYS = {
    **dict.fromkeys(("openid", "open_id", "unionid", "union_id"), "openid"),
    **dict.fromkeys(("phone", "mobile", "tel", "telephone", "phone_number"), "phone"),
    **dict.fromkeys(("email", "mail", "e-mail"), "email"),
    **dict.fromkeys(("idcard", "id_card", "idno", "id_no", "id_number", "cert_no", "certno"), "id_number"),
    **dict.fromkeys(("name", "realname", "real_name", "username", "user_name", "nickname"), "name"),
    **dict.fromkeys(("bankcard", "bank_card", "card_no", "cardno", "card_number"), "bank_card"),
    **dict.fromkeys(("token", "access_token", "refresh_token", "session", "sessionid", "ticket"), "token"),
}

Finding = tuple[str, str]  # (kind, the text that matched): never printed or logged as is

_SEP = r"[\s.+\-]"  # separators seen inside phone numbers ("+" is a form-encoded space)
# Digit runs right after "<digit>." are fractions (e.g. an average cast to text), not numbers:
# hence the (?<!\d\.) look-behinds below.
_PHONE = re.compile(rf"(?<!\d)(?<!\d\.)(?:(?:\+|00)?86{_SEP}?)?1[3-9](?:{_SEP}?\d){{9}}(?!\d)")
_ID_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)([1-8]\d{5})[ -]?(\d{8})[ -]?(\d{3}[\dXx])(?!\d)")
_CARD_RUN = re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ -]?\d){12,}(?!\d)")
# A match starts only where a run of local-part characters starts, and never gives characters
# back: a long run without "@" costs one pass, not one per position (quadratic: a 64 KiB
# message of letters took seconds, a crafted one minutes).
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]++@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_HEX2 = "[0-9A-Fa-f]{2}"
_MAC = re.compile(
    rf"(?<![0-9A-Za-z:\-])(?:{_HEX2}(?P<sep>[:\-]){_HEX2}(?:(?P=sep){_HEX2}){{4}}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
    r"|(?<!\d\.)[0-9A-Fa-f]{12})(?![0-9A-Za-z:\-])"
)
_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
)
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])")
_PREFIX_LEN = re.compile(r"/(\d{1,3})(?!\d)")
_OPENID = re.compile(r"(?<![A-Za-z0-9_\-])[oO][A-Za-z0-9_\-]{27}(?![A-Za-z0-9_\-])")
_MARKER = re.compile(r"\[[a-z_]+\]")
_KEYED_VALUE = re.compile(
    r"(?i)(?<=[?&;])(" + "|".join(re.escape(k) for k in SENSITIVE_QUERY_KEYS) + r")=([^&#\s\"'<>]+)"
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CARD_FIRST_DIGITS = frozenset("234569")  # issuer prefixes (IIN); "1" is a phone or a timestamp


def id_number_valid(digits17: str, check: str) -> bool:
    """ISO 7064 MOD 11-2 checksum of an 18-character resident ID number."""
    total = sum(int(d) * w for d, w in zip(digits17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check.upper()


def _birth_date_valid(yyyymmdd: str) -> bool:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return 1900 <= born.year <= date.today().year


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Card numbers (13-19 digits) in a run of separator-delimited digit groups, longest first,
    then again to their left and right: a run can hold several cards, or a card and other digits."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]

    def best_in(lo: int, hi: int) -> list[tuple[int, int]]:
        best: tuple[int, int, int, int] | None = None  # (start, end, first group, last group + 1)
        for i in range(lo, hi):
            for j in range(hi, i, -1):
                start, end = groups[i][0], groups[j - 1][1]
                digits = re.sub(r"\D", "", run[start:end])
                if 13 <= len(digits) <= 19 and digits[0] in _CARD_FIRST_DIGITS and luhn_valid(digits):
                    if best is None or end - start > best[1] - best[0]:
                        best = (start, end, i, j)
                    break
        if best is None:
            return []
        return [*best_in(lo, best[2]), (best[0], best[1]), *best_in(best[3], hi)]

    return best_in(0, len(groups))


def _ip_network_prefix(text: str, end: int, address: str) -> bool:
    """True when the address is followed by /len and is that network (e.g. "203.0.113.0/24")."""
    m = _PREFIX_LEN.match(text, end)
    if not m:
        return False
    try:
        network = ipaddress.ip_network(f"{address}/{m.group(1)}", strict=True)
    except ValueError:
        return False
    return network.prefixlen <= (24 if network.version == 4 else 64)


def _sub(pattern: re.Pattern[str], text: str, decide: Callable[[re.Match[str]], str | None]) -> str:
    """re.sub where `decide` returns the replacement, or None to keep the match."""

    def repl(m: re.Match[str]) -> str:
        out = decide(m)
        return m.group(0) if out is None else out

    return pattern.sub(repl, text)


# Hashes, pseudonyms and UUIDs are not personal data, but their digit runs can look like phone or
# card numbers: they are skipped whole (a run of 16+ hex digits with a letter, or a UUID).
_OPAQUE_TOKEN = re.compile(
    r"(?<![0-9A-Za-z\-])((?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,})(?![0-9A-Za-z\-])"
)


def _scan(text: str, found: list[Finding]) -> str:
    """Replace every identifier in `text` by its marker, appending (kind, match) to `found`."""
    parts = _OPAQUE_TOKEN.split(text)
    if len(parts) == 1:
        return _scan_part(text, found)
    # split() keeps the tokens at odd positions: scan only what lies between them.
    return "".join(part if i % 2 else _scan_part(part, found) for i, part in enumerate(parts))


def _scan_part(text: str, found: list[Finding]) -> str:
    """Replace every identifier in `text` by its marker, appending (kind, match) to `found`.

    The order matters: keyed query values first (any shape), then addresses and the longer,
    checksummed numbers, so that a card or ID number isn't half-taken for a phone number.
    """

    def mark(kind: str, m: re.Match[str], matched: str | None = None) -> str:
        found.append((kind, matched if matched is not None else m.group(0)))
        return f"[{kind}]"

    def keyed(m: re.Match[str]) -> str | None:
        if _MARKER.fullmatch(m.group(2)):
            return None
        kind = SENSITIVE_QUERY_KEYS[m.group(1).lower()]
        found.append((kind, m.group(2)))
        return f"{m.group(1)}=[{kind}]"

    def id_number(m: re.Match[str]) -> str | None:
        digits17 = m.group(1) + m.group(2) + m.group(3)[:3]
        if _birth_date_valid(m.group(2)) and id_number_valid(digits17, m.group(3)[3]):
            return mark("id_number", m)
        return None

    def card(m: re.Match[str]) -> str | None:
        run = m.group(0)
        spans = _card_spans(run)
        if not spans:
            return None
        out, last = [], 0
        for start, end in spans:
            out += [run[last:start], mark("bank_card", m, run[start:end])]
            last = end
        return "".join(out) + run[last:]

    def ip(m: re.Match[str]) -> str | None:
        address = m.group(0)
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return None
        if parsed.is_unspecified or parsed.is_loopback or _ip_network_prefix(m.string, m.end(), address):
            return None
        return mark("ip", m)

    text = _sub(_KEYED_VALUE, text, keyed)
    text = _sub(_EMAIL, text, lambda m: mark("email", m))
    text = _sub(_IPV4, text, ip)  # before phones: "130.10.100.100" is an address
    text = _sub(_ID_NUMBER, text, id_number)
    text = _sub(_CARD_RUN, text, card)
    text = _sub(_PHONE, text, lambda m: mark("phone", m))
    text = _sub(_MAC, text, lambda m: mark("mac", m))
    text = _sub(_IPV6, text, ip)
    return _sub(_OPENID, text, lambda m: mark("openid", m))


def _decoded(text: str) -> str:
    """Undo URL encoding (also double encoding), so "%40" can't hide an e-mail address."""
    for _ in range(3):
        if "%" not in text:
            break
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def find_identifiers(text: str) -> list[Finding]:
    """Every identifier found in `text`, as (kind, matched text); URL-decoded forms too."""
    found: list[Finding] = []
    _scan(text, found)
    decoded = _decoded(text)
    if decoded != text:
        _scan(decoded, found)
    return found


@lru_cache(maxsize=1 << 16)
def redact_cached(text: str) -> tuple[str, tuple[str, ...]]:
    """`redact_text` for the hot path: (redacted, kinds found, one per finding); memoized."""
    found: list[Finding] = []
    redacted = _scan(_decoded(text), found)
    return redacted, tuple(kind for kind, _ in found)


def redact_text(text: str) -> tuple[str, Counter[str]]:
    """Replace personal data in free text by markers; count the findings per kind (R4)."""
    redacted, kinds = redact_cached(text)
    return redacted, Counter(kinds)


@lru_cache(maxsize=1 << 16)
def clean_page_cached(url: str) -> tuple[str, tuple[str, ...]]:
    """`clean_page` for the hot path: (page, kinds found); memoized."""
    parts = urlsplit(url)
    path, kinds = redact_cached(parts.path or "/")
    found = list(kinds)
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        key_kinds = redact_cached(key)[1]
        if key.lower() in SENSITIVE_QUERY_KEYS:
            if value:
                found.append(SENSITIVE_QUERY_KEYS[key.lower()])
            continue
        clean_value, value_kinds = redact_cached(value)
        found.extend(key_kinds + value_kinds)  # counted even when the parameter is dropped
        if key in PAGE_QUERY_ALLOW:
            kept.append((key, clean_value))
    if kept:
        path += "?" + "&".join(f"{k}={quote(v, safe='[]')}" for k, v in sorted(kept))
    return path, tuple(found)


def clean_page(url: str) -> tuple[str, Counter[str]]:
    """An analytics page dimension: the path, allow-listed query parameters, no fragment (R4).

    The path and kept values are redacted; every other parameter is dropped (its personal data
    still counted), so a page dimension can't carry a tracking id or an identifier.
    """
    page, kinds = clean_page_cached(url)
    return page, Counter(kinds)


# --- dead letters ---------------------------------------------------------------------------

# Which keys of a message hold identifiers is the field policy's to say
# (`FieldPolicy.dead_letter_keys`); the names identifiers go by in queries and forms are added here.
_REMOVED = "[removed]"
MAX_DEADLETTER_CHARS = 4096
# Keys whose value is a URL or path: kept as an analytics page is (path and allow-listed query).
_URL_KEYS = frozenset({"page", "referrer", "path"})


@dataclass(frozen=True)
class DeadLetterKeys:
    """What a dead letter's payload loses whole: the values of `identifiers` (keys, lowercase),
    and a `groups` key (an object of identifiers and profile data) whose value is not an object
    (a list, a string: the reason the message was rejected)."""

    identifiers: frozenset[str]
    groups: frozenset[str]

    @cached_property
    def keyed(self) -> re.Pattern[str]:
        """`"key": "value"` of an identifier key, in a payload that is not JSON."""
        names = "|".join(re.escape(k) for k in sorted(self.identifiers | set(SENSITIVE_QUERY_KEYS)))
        return re.compile(r'(?i)"(' + names + r')"(\s*:\s*)"[^"]*"?')


def _redact_json(value: object, keys: DeadLetterKeys) -> object:
    if isinstance(value, dict):
        return {str(k): _redact_field(str(k).lower(), v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, keys) for v in value]
    if isinstance(value, str):
        return redact_cached(value)[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # A number can be a phone or a card number too.
        text = str(value)
        redacted = redact_cached(text)[0]
        return value if redacted == text else redacted
    return value


def _redact_field(key: str, value: object, keys: DeadLetterKeys) -> object:
    if value is None:
        return None
    if key in keys.identifiers or key in SENSITIVE_QUERY_KEYS or (key in keys.groups and not isinstance(value, dict)):
        return _REMOVED
    if key in _URL_KEYS and isinstance(value, str):
        return clean_page_cached(value)[0]
    return _redact_json(value, keys)


def redact_payload(raw: bytes, keys: DeadLetterKeys) -> str:
    """A rejected message's payload, fit for the dead-letter topic: identifiers removed (R4).

    Values of identifier fields become "[removed]", other text is redacted; a payload that
    isn't JSON is redacted as text, with `"openid": "..."`-style values removed. Cut to
    MAX_DEADLETTER_CHARS.
    """
    text = raw[: 1 << 20].decode("utf-8", errors="replace")
    try:
        parsed = safejson.loads(text)
    except ValueError:  # not JSON, or too deep to walk
        cleaned = keys.keyed.sub(lambda m: f'"{m.group(1)}"{m.group(2)}"{_REMOVED}"', text)
        return redact_cached(cleaned)[0][:MAX_DEADLETTER_CHARS]
    return well_formed(json.dumps(_redact_json(parsed, keys), ensure_ascii=False)[:MAX_DEADLETTER_CHARS])


def well_formed(text: str) -> str:
    """`text` with lone surrogates (JSON may escape them: "\\ud800") replaced by "?", so it can be
    written as UTF-8 at all."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


__all__ = [
    "DeadLetterKeys",
    "PAGE_QUERY_ALLOW",
    "clean_page",
    "find_identifiers",
    "id_number_valid",
    "luhn_valid",
    "redact_payload",
    "redact_text",
    "well_formed",
]
