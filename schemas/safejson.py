"""JSON from strangers, parsed without recursion risk: one nesting limit for every path.

Python's `json` and pydantic's parser recurse per level of nesting: a message of a few thousand
`[` (at the top or inside any field) raises RecursionError, which no `except ValueError` catches,
and stops whatever parsed it. Every parse of outside input (collector, `seaport produce`'s keys,
validation, dead letters, redaction, registration-field counting) goes through `loads`, or asks
`too_deep` first (validation, before pydantic): both measure the nesting with a regular
expression and a counter.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The contract's messages nest three levels (a beacon's `user`); a tracker batch adds two
# (`{"events": [...]}`). Anything deeper than this is no message of ours.
MAX_JSON_DEPTH = 32

# A JSON string, escapes included (unrolled: no backtracking per character); brackets inside
# strings are not nesting.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class TooDeep(ValueError):
    """The document nests deeper than MAX_JSON_DEPTH (a ValueError, as any other bad JSON)."""


def too_deep(doc: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `doc` opens more than `limit` arrays/objects inside each other. Never recurses.
    Bytes are read as UTF-8 (whose multi-byte characters hold no ASCII byte), as pydantic reads them."""
    if isinstance(doc, bytes | bytearray):
        if doc.count(b"[") + doc.count(b"{") <= limit:  # the common case: one pass in C
            return False
        doc = doc.decode("utf-8", "replace")  # a replacement character is no bracket or quote either
    elif doc.count("[") + doc.count("{") <= limit:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub('""', doc)):
        if m.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(doc: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, refusing with TooDeep (a ValueError) what nests deeper than `limit`.
    Bytes must be UTF-8 without a byte-order mark, as pydantic reads messages (RFC 8259 8.1):
    bad JSON, other encodings and a BOM raise ValueError too (UnicodeDecodeError is one)."""
    if isinstance(doc, bytes | bytearray):
        doc = doc.decode("utf-8")
    if too_deep(doc, limit):
        raise TooDeep(f"JSON nested deeper than {limit} levels")
    return json.loads(doc)


__all__ = ["MAX_JSON_DEPTH", "TooDeep", "loads", "too_deep"]
