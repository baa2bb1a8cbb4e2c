"""Small builders for self-contained HTML pages: escaped text and tables.

Every piece of text that comes from data (page names, elements, reasons…) goes through `esc`, so a
page called `<script>` shows as text and never runs. No CDN: a page is one file. (The product
dashboard's charts are drawn by its own inlined script: dashboards/static/dashboard.js.)
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

CSS = """
body{font:14px/1.45 system-ui,"Noto Sans CJK SC","Noto Sans SC",sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea}
table{border-collapse:collapse;margin:.5rem 0;display:block;overflow-x:auto}td,th{padding:.2rem .6rem;border-bottom:1px solid #eef1f4;
text-align:left;vertical-align:top}th{background:#f5f7f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#7a8694;font-style:italic}.note{color:#55606c;font-size:.9rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #dde3ea;border-radius:6px;padding:.6rem 1rem}
.card b{display:block;font-size:1.3rem}svg text{font:11px system-ui,sans-serif;fill:#1d2733}
code{background:#f5f7f9;padding:0 .2rem;word-break:break-all}
"""

NO_DATA = '<p class="empty">no data yet</p>'


def esc(value: object) -> str:
    """Text from data, safe to put in HTML text or attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, extra_css: str = "", lang: str = "en") -> str:
    """A whole HTML document with the inline style sheet (and `extra_css` after it)."""
    return (
        f'<!DOCTYPE html>\n<html lang="{esc(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{extra_css}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def fmt(value: object) -> str:
    """Numbers readable at a glance; everything else as text."""
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], max_cell: int = 200) -> str:
    """An HTML table; numbers right-aligned, long cells cut to `max_cell` characters."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for value in row:
            text = fmt(value)
            text = text if len(text) <= max_cell else text[: max_cell - 1] + "…"
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="n">{esc(text)}</td>' if numeric else f"<td>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return NO_DATA
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"
