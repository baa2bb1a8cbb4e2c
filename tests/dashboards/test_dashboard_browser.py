"""The dashboard in a real browser: headless Chromium opens the built page from the file system.

Needs Debian's `chromium`, `chromium-driver` and `fonts-noto-cjk` (scripts/setup.sh installs them
with SEAPORT_SETUP_TEST_TOOLS=1) and the `selenium` package. Every chart has data, the console has
no error, the controls change the figures to exactly what SQL on the same analytics.duckdb
answers, hostile names never run, and Chinese labels render with a CJK font (a screenshot is left
in the test's folder).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from dashboards.dashboard import build_dashboard
from tests.dashboards.test_dashboard import DAYS, OTHER, SHANGHAI, fill_full_analytics, served

HOSTILE_PAGE = '/promo/<img src=x onerror="window.__pwned=1">'
HOSTILE_ELEMENT = "<script>window.__pwned=2</script>"
TZ = "Asia/Shanghai"
LOCAL_DAY = f"CAST(timezone('{TZ}', hour) AS DATE)"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("warehouse")
    fill_full_analytics(root, random.Random(2026), page=HOSTILE_PAGE, element=HOSTILE_ELEMENT)
    return root


def sql(store: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        con.execute(f"SET TimeZone = '{TZ}'")
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def figures(driver: webdriver.Chrome) -> dict[str, Any]:
    return driver.execute_script("return window.seaportDashboard.figures")


def set_date(driver: webdriver.Chrome, control: str, day: str) -> None:
    """What picking a day in the date picker does: a new value, then `change`."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('change', {bubbles: true}));",
        control,
        day,
    )


def set_range(driver: webdriver.Chrome, first: str, last: str) -> None:
    set_date(driver, "from", first)
    set_date(driver, "to", last)
    assert driver.execute_script("return window.seaportDashboard.state")["from"] == first


def severe(driver: webdriver.Chrome) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def drawn_version(driver: webdriver.Chrome) -> str | None:
    """The data version of the page once its script has drawn it, else None."""
    return driver.execute_script("const d = window.seaportDashboard; return d && d.redraws ? d.version : null")


def open_dashboard(driver: webdriver.Chrome, page: Path | str) -> None:
    driver.get(page.as_uri() if isinstance(page, Path) else page)
    deadline = time.monotonic() + 15
    while not drawn_version(driver):
        assert time.monotonic() < deadline, "the dashboard did not draw"
        time.sleep(0.05)


def test_charts_filters_and_figures_match_sql(browser: webdriver.Chrome, warehouse: Path, tmp_path: Path) -> None:
    store = warehouse / "analytics.duckdb"
    page = build_dashboard(warehouse, tmp_path / "dashboard.html", TZ)
    open_dashboard(browser, page)
    assert severe(browser) == []

    # Every chart drawn, each with data, over the whole range by default.
    series = browser.execute_script(
        """return Object.fromEntries(Object.entries(window.seaportDashboard.charts).map(([name, chart]) =>
             [name, chart.getOption().series.map((s) => (s.data || []).length)]))"""
    )
    assert set(series) == {
        "traffic", "pages", "clicks", "funnel", "os", "models", "audience-gender", "audience-country",
        "audience-city", "audience-language", "sessions", "retention", "deadletters",
    }  # fmt: skip
    assert all(lengths and all(lengths) for lengths in series.values()), series
    state = browser.execute_script("return window.seaportDashboard.state")
    assert (state["from"], state["to"]) == (DAYS[0].isoformat(), DAYS[-1].isoformat())
    days_with_daily = {d for (d,) in sql(store, "SELECT DISTINCT day FROM page_views_daily")}
    total = sql(
        store,
        f"""SELECT (SELECT sum(views) FROM page_views_daily)
                 + (SELECT sum(views) FROM page_views_hourly WHERE {LOCAL_DAY} NOT IN (SELECT day FROM page_views_daily))""",
    )[0][0]
    assert figures(browser)["kpis"]["views"] == total
    assert OTHER in {p["page"] for p in figures(browser)["pages"]}  # the roll-up counts, as "(other)"

    # One day that page_views_daily has, and one page.
    day, chosen = sorted(days_with_daily)[1], "/policy/query"
    set_range(browser, day.isoformat(), day.isoformat())
    Select(browser.find_element(By.ID, "page")).select_by_visible_text(chosen)
    got = figures(browser)
    views, visitors = sql(
        store, "SELECT views, visitors FROM page_views_daily WHERE day = ? AND page = ?", [day, chosen]
    )[0]
    assert got["kpis"]["views"] == views
    assert browser.find_element(By.CSS_SELECTOR, "#kpis .card b").text == f"{views:,}"
    assert [(p["page"], p["views"], p["visitors"], p["visitorsSummed"]) for p in got["pages"]] == [
        (chosen, views, visitors, False)  # one cell: distinct visitors, not a sum
    ]
    hourly = dict(
        (label, (v, u))
        for label, v, u in sql(
            store,
            f"""SELECT strftime(timezone('{TZ}', hour), '%Y-%m-%d %H:%M'), sum(views), sum(visitors)
                FROM page_views_hourly WHERE {LOCAL_DAY} = ? AND page = ? GROUP BY 1""",
            [day, chosen],
        )
    )
    traffic = got["traffic"]
    assert traffic["grain"] == "hour" and len(traffic["labels"]) == 24
    assert traffic["views"] == [hourly.get(label, (0, 0))[0] for label in traffic["labels"]]
    assert traffic["visitors"] == [hourly.get(label, (0, 0))[1] for label in traffic["labels"]]
    clicks = sql(
        store,
        "SELECT element, clicks FROM clicks_daily WHERE day = ? AND page = ? ORDER BY clicks DESC, element",
        [day, chosen],
    )
    assert [(c["element"], c["clicks"]) for c in got["clicks"]] == clicks
    assert got["funnel"] == [{"page": chosen, "views": views, "clicks": sum(c for _, c in clicks)}]
    assert got["sessions"]["total"] == sql(store, "SELECT sessions FROM sessions_daily WHERE day = ?", [day])[0][0]
    gender = dict(sql(store, "SELECT gender, sum(visitors) FROM audience_daily WHERE day = ? GROUP BY 1", [day]))
    assert {g["value"]: g["visitors"] for g in got["audience"]["gender"]} == gender
    models = dict(sql(store, "SELECT device_model, sum(events) FROM devices_daily WHERE day = ? GROUP BY 1", [day]))
    assert {m["model"]: m["events"] for m in got["models"]} == models
    cohorts = sql(
        store,
        """SELECT DISTINCT cohort_week FROM retention_weekly
           WHERE cohort_week + 7 * weeks_since <= ? AND cohort_week + 7 * weeks_since + 6 >= ?""",
        [day, day],
    )
    assert {r["cohortWeek"] for r in got["retention"]} == {c.isoformat() for (c,) in cohorts}
    # the page filter does not split audience: the panel says so
    assert "does not apply" in browser.find_element(By.CSS_SELECTOR, "#audience .filters-note").text

    # The OS filter narrows the devices.
    Select(browser.find_element(By.ID, "os")).select_by_visible_text("iOS")
    ios = dict(
        sql(store, "SELECT device_model, sum(events) FROM devices_daily WHERE day = ? AND os = 'iOS' GROUP BY 1", [day])
    )
    assert {m["model"]: m["events"] for m in figures(browser)["models"]} == ios

    # A day only page_views_hourly has, all pages: the day's hours added up, visitors marked as sums.
    Select(browser.find_element(By.ID, "page")).select_by_index(0)
    last = DAYS[-1]
    assert last not in days_with_daily
    set_range(browser, last.isoformat(), last.isoformat())
    got = figures(browser)
    by_page = dict(
        sql(store, f"SELECT page, sum(views) FROM page_views_hourly WHERE {LOCAL_DAY} = ? GROUP BY 1", [last])
    )
    assert {p["page"]: p["views"] for p in got["pages"]} == by_page
    assert got["kpis"]["views"] == sum(by_page.values())
    assert not any(got["traffic"]["visitors"])  # all pages: distinct counts are never added up

    # Two days, one from each table: a bar per day.
    first = sorted(days_with_daily)[-1]
    set_range(browser, first.isoformat(), last.isoformat())
    got = figures(browser)["traffic"]
    per_day = [sql(store, "SELECT sum(views) FROM page_views_daily WHERE day = ?", [first])[0][0]] + [
        sql(store, f"SELECT sum(views) FROM page_views_hourly WHERE {LOCAL_DAY} = ?", [d])[0][0]
        for d in DAYS
        if first < d <= last
    ]
    assert got["grain"] == "day" and got["views"] == per_day
    # one page: its distinct visitors on the day page_views_daily has; none where only hours are
    Select(browser.find_element(By.ID, "page")).select_by_visible_text(chosen)
    got = figures(browser)["traffic"]
    daily_visitors = sql(store, "SELECT visitors FROM page_views_daily WHERE day = ? AND page = ?", [first, chosen])
    assert got["visitors"][0] == daily_visitors[0][0] and got["visitors"][1:] == [None] * (len(per_day) - 1)
    assert severe(browser) == []


def test_hostile_names_stay_text(browser: webdriver.Chrome, warehouse: Path, tmp_path: Path) -> None:
    page = build_dashboard(warehouse, tmp_path / "dashboard.html", TZ)
    open_dashboard(browser, page)
    Select(browser.find_element(By.ID, "page")).select_by_visible_text(HOSTILE_PAGE)  # shown as it is
    assert HOSTILE_ELEMENT in {c["element"] for c in figures(browser)["clicks"]}
    # every tooltip of every chart shown once (ECharts' tooltips are HTML)
    browser.execute_script(
        """for (const chart of Object.values(window.seaportDashboard.charts)) {
             chart.getOption().series.forEach((s, si) => (s.data || []).slice(0, 30).forEach((_, i) =>
               chart.dispatchAction({type: "showTip", seriesIndex: si, dataIndex: i})));
           }"""
    )
    time.sleep(0.3)
    assert browser.execute_script("return window.__pwned === undefined && document.images.length === 0")
    assert HOSTILE_PAGE in browser.find_element(By.ID, "pages").text  # in the table, as text
    assert severe(browser) == []


def test_chinese_labels_render(browser: webdriver.Chrome, warehouse: Path, tmp_path: Path) -> None:
    page = build_dashboard(warehouse, tmp_path / "dashboard.html", TZ)
    open_dashboard(browser, page)
    # The fonts Chromium really used for the heading "seaport — 产品看板 product dashboard"
    browser.execute_cdp_cmd("DOM.enable", {})
    browser.execute_cdp_cmd("CSS.enable", {})
    root = browser.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
    heading = browser.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": "h1"})["nodeId"]
    fonts = browser.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": heading})["fonts"]
    cjk = [f for f in fonts if "CJK" in f["familyName"] or "Noto Sans SC" in f["familyName"]]
    assert cjk and sum(f["glyphCount"] for f in cjk) >= 4, fonts
    # In a canvas (ECharts' labels), with the page's font stack: real glyphs, not tofu boxes: two
    # characters draw differently, and unlike a code point no font has.
    drawn = browser.execute_script(
        """const font = "32px " + getComputedStyle(document.body).fontFamily;
           const pixels = (text) => {
             const c = document.createElement("canvas"); c.width = 40; c.height = 40;
             const g = c.getContext("2d"); g.font = font; g.fillText(text, 2, 32);
             return Array.from(g.getImageData(0, 0, 40, 40).data).join(",");
           };
           const a = pixels("浏"), b = pixels("览"), missing = pixels("\\uE000");
           return {differ: a !== b, notMissing: a !== missing && b !== missing, inked: /[1-9]/.test(a)};"""
    )
    assert drawn == {"differ": True, "notMissing": True, "inked": True}
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(height + 100, 6000))
    browser.execute_script("Object.values(window.seaportDashboard.charts).forEach((c) => c.resize())")
    time.sleep(0.3)
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert severe(browser) == []


def test_served_page_reloads_with_new_data_and_keeps_its_filters(browser: webdriver.Chrome, tmp_path: Path) -> None:
    root = tmp_path / "warehouse"
    root.mkdir()
    store = fill_full_analytics(root, random.Random(7))
    with served(root, tmp_path / "site" / "dashboard.html") as (base, _server):
        open_dashboard(browser, base)
        Select(browser.find_element(By.ID, "page")).select_by_visible_text("/home")
        assert browser.current_url.endswith("#page=%22%2Fhome%22")  # the filters live in the address
        version = drawn_version(browser)
        before = figures(browser)["kpis"]["views"]
        noon = dt.datetime.combine(DAYS[-1], dt.time(12), tzinfo=SHANGHAI)
        con = duckdb.connect(str(store))  # an ingest's run: the server rebuilds, the page reloads itself
        con.execute("INSERT INTO page_views_hourly VALUES (?, '/home', 1000, 0, NULL, 'fields-v3', 1)", [noon])
        con.close()
        deadline = time.monotonic() + 20  # the page asks every 5 s
        while drawn_version(browser) in (None, version):
            assert time.monotonic() < deadline, "the page did not reload"
            time.sleep(0.2)
        assert browser.execute_script("return window.seaportDashboard.state.page") == '"/home"'
        assert figures(browser)["kpis"]["views"] == before + 1000
        assert severe(browser) == []
