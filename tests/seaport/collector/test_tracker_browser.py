"""The tracker in a real browser: headless Chromium opens the demo page from the collector.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package. The expected
page views, clicks and page leaves (with a duration) must arrive on `beacons.raw`; no profile
field before consent (R2); profile fields after it; none again after withdrawal (R3); and with
Global Privacy Control on, every event carries the collector's opt-out mark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from seaport.devtools.loadtest import running_collector
from seaport.kafka.clients import make_client
from seaport.kafka.topics import topic_name
from tests.helpers import read_all


def read_values(bootstrap: str, topic: str) -> list[dict]:
    client = make_client("confluent", bootstrap)
    try:
        return [json.loads(r.value) for r in read_all(client, topic)]
    finally:
        client.close()


def wait_for(read: Callable[[], list[dict]], done: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
    """Read until `done` holds (the tracker batches for a second; sendBeacon is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        values = read()
        if done(values) or time.monotonic() > deadline:
            return values
        time.sleep(0.3)


@pytest.fixture
def demo(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[str]:
    with running_collector(kafka_bootstrap, topic_prefix, log=tmp_path / "collector.log") as base_url:
        yield base_url


def open_demo(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    deadline = time.monotonic() + 15
    while not driver.execute_script("return !!(window.seaport && window.seaport.loaded)"):
        assert time.monotonic() < deadline, "the tracker did not load"
        time.sleep(0.05)


def click(driver: webdriver.Chrome, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()
    time.sleep(0.25)  # a visible duration between steps


def test_demo_page_sends_views_clicks_and_leaves_and_respects_consent(
    browser: webdriver.Chrome, demo: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    beacons = topic_name("beacons.raw", topic_prefix)
    open_demo(browser, demo + "/demo")
    click(browser, "quote")
    click(browser, "promo")
    browser.find_element(By.LINK_TEXT, "My policies").click()  # a single-page route change
    time.sleep(0.3)
    click(browser, "sign-in")  # identify, but no consent yet
    click(browser, "quote")
    browser.get("about:blank")  # leave: page_leave + sendBeacon

    def before_consent_done(values: list[dict]) -> bool:
        return sum(v["event"] == "page_leave" for v in values) >= 2

    values = wait_for(lambda: read_values(kafka_bootstrap, beacons), before_consent_done)
    views = [v["page"] for v in values if v["event"] == "page_view"]
    clicks = [v["element"] for v in values if v["event"] == "click"]
    leaves = {v["page"]: v["duration_ms"] for v in values if v["event"] == "page_leave"}
    assert views == ["/demo", "/demo/policy/query"]
    assert sorted(clicks) == sorted(["quote", "promo-card", "My policies", "wechat-sign-in", "quote"])
    assert set(leaves) == {"/demo", "/demo/policy/query"}
    assert leaves["/demo"] >= 500 and leaves["/demo/policy/query"] >= 500  # ms on each page
    assert all("user" not in v for v in values), "a profile field was sent before consent (R2)"
    assert len({v["anonymous_id"] for v in values}) == 1 and values[0]["anonymous_id"].startswith("c-")
    assert len({v["session_id"] for v in values}) == 1
    assert len({v["event_id"] for v in values}) == len(values)
    assert all(v["opt_out"] is False and v["network"]["ip"] == "127.0.0.1" for v in values)
    first_batch = len(values)

    # Consent granted: a consent/1 change, then profile fields; withdrawn: none again (R3).
    open_demo(browser, demo + "/demo/claims/new")
    click(browser, "consent-grant")
    click(browser, "quote")
    click(browser, "consent-withdraw")
    click(browser, "promo")
    browser.get("about:blank")
    values = wait_for(
        lambda: read_values(kafka_bootstrap, beacons), lambda vs: sum(v["event"] == "page_leave" for v in vs) >= 3
    )[first_batch:]
    by_element = {v.get("element"): v for v in values if v["event"] == "click"}
    profile = by_element["quote"]["user"]
    assert profile["openid"].startswith("o") and profile["city"] == "Shanghai" and profile["gender"] == "female"
    assert "user" not in by_element["promo-card"]
    changes = wait_for(
        lambda: read_values(kafka_bootstrap, topic_name("consent.events", topic_prefix)), lambda vs: len(vs) >= 2
    )
    assert [c["analytics"] for c in changes] == ["granted", "withdrawn"]
    assert all(c["subject"] == {"openid": profile["openid"]} for c in changes)
    assert [v["page"] for v in values if v["event"] == "page_view"] == ["/demo/claims/new"]


def test_with_global_privacy_control_every_event_is_marked_opted_out(
    browser: webdriver.Chrome, demo: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # A browser with GPC on sends the header and exposes navigator.globalPrivacyControl. (DevTools'
    # extra headers miss the sendBeacon at unload, so the tracker's own mark covers those here.)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Sec-GPC": "1"}})
    browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"},
    )
    open_demo(browser, demo + "/demo")
    click(browser, "sign-in")
    click(browser, "consent-grant")  # GPC still wins in the tracker: no profile is sent
    click(browser, "quote")
    browser.find_element(By.LINK_TEXT, "New claim").click()
    time.sleep(0.3)
    browser.get("about:blank")
    values = wait_for(
        lambda: read_values(kafka_bootstrap, topic_name("beacons.raw", topic_prefix)),
        lambda vs: sum(v["event"] == "page_leave" for v in vs) >= 2,
    )
    kinds = sorted({v["event"] for v in values})
    assert kinds == ["click", "page_leave", "page_view"]
    assert len(values) >= 7 and all(v["opt_out"] is True for v in values)
    assert all("user" not in v for v in values)
