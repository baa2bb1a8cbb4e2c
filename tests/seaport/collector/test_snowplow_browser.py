"""The real Snowplow browser tracker (4.6.8, UMD builds from .cache/sdk) against the collector.

A page served from another origin (a test HTTP server on 127.0.0.1, another port) runs the
tracker in headless Chromium, with POST and with GET: `trackPageView`, a real click on a link
(link-click plugin; navigation prevented), and activity tracking with page pings. On
`beacons.raw` each mapping lands exactly once: the page view, the click, and one page_leave whose
duration is the span from the page view to its last ping. The login id set with `setUserId`
appears only as `user.openid` (collector run with --login-id-is-openid), and after `seaport
ingest` `seaport audit --canaries` finds none of the tracker's ids in the warehouse.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from seaport.collector.snowplow import IDLE_ENV
from seaport.devtools.loadtest import running_collector
from seaport.kafka.topics import topic_name
from tests.pipelines.test_ingest import ingest
from tests.seaport.collector.test_tracker_browser import read_values, wait_for

SDK = Path(__file__).resolve().parents[3] / ".cache" / "sdk" / "node_modules" / "@snowplow"
BUILDS = {
    "browser-tracker.js": SDK / "browser-tracker" / "dist" / "index.umd.min.js",
    "link-click-tracking.js": SDK / "browser-plugin-link-click-tracking" / "dist" / "index.umd.min.js",
}
RNG = random.Random(31)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Snowplow on seaport</title>
<script src="browser-tracker.js"></script><script src="link-click-tracking.js"></script></head>
<body>
<p><a id="offer-link" href="/offer/gold">See the gold plan</a></p>
<script>
window.sent = []; window.failures = [];
document.getElementById('offer-link').addEventListener('click', (e) => e.preventDefault());
function start(collector, method, userId) {
  const sp = window.snowplowBrowserTracking, lc = window.snowplowLinkClickTracking;
  sp.newTracker('sp', collector, {
    appId: 'seaport-test', eventMethod: method, cookieSecure: false,
    plugins: [lc.LinkClickTrackingPlugin()],
    onRequestSuccess: (payloads) => window.sent.push(...payloads),
    onRequestFailure: (failure) => window.failures.push(String(failure.status || failure.message)),
  });
  sp.setUserId(userId);
  sp.enableActivityTracking({minimumVisitLength: 1, heartbeatDelay: 1});
  lc.enableLinkClickTracking();
  sp.trackPageView();
  // a reader moving the mouse for a while, then still
  window.moving = setInterval(() => document.dispatchEvent(new MouseEvent('mousemove')), 200);
}
</script></body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The test page and the tracker's builds, served from another origin than the collector's."""
    root = tmp_path / "site"
    root.mkdir()
    for name, build in BUILDS.items():
        assert build.is_file(), f"{build} missing: run scripts/setup.sh with SEAPORT_SETUP_TEST_TOOLS=1"
        shutil.copy(build, root / name)
    (root / "index.html").write_text(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _embedded(payload: dict, plain: str, encoded: str) -> dict:
    if plain in payload:
        return json.loads(payload[plain])
    value = payload[encoded]
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def _web_page_id(payload: dict) -> str:
    (page_id,) = [c["data"]["id"] for c in _embedded(payload, "co", "cx")["data"] if "/web_page/" in c["schema"]]
    return page_id


def run_page(browser: webdriver.Chrome, site: str, collector: str, method: str, user_id: str) -> list[dict]:
    """Load the page, track with `method`, click the link, move for ~3 s; what the tracker sent."""
    browser.get(site + "/index.html")
    browser.execute_script("start(arguments[0], arguments[1], arguments[2])", collector, method, user_id)
    time.sleep(0.6)
    browser.find_element(By.ID, "offer-link").click()  # a real click; the page stays
    time.sleep(2.6)
    browser.execute_script("clearInterval(window.moving)")
    time.sleep(1.5)  # the heartbeat after the last move may still ping; then the page is quiet
    deadline = time.monotonic() + 10
    while True:
        sent = browser.execute_script("return window.sent")
        kinds = [p["e"] for p in sent]
        if ("pv" in kinds and "ue" in kinds and kinds.count("pp") >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert browser.execute_script("return window.failures") == [], f"{method}: the tracker saw failed requests"
    assert browser.current_url == site + "/index.html"  # the click did not navigate away
    return sent


def test_the_real_tracker_with_post_and_get_lands_views_clicks_and_page_leaves(
    browser: webdriver.Chrome,
    site: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(IDLE_ENV, "3")  # pings come every second: a page view closes 3 s after its last
    user_id = f"test-openid-{RNG.getrandbits(64):016x}"
    options = ("--cors-origin", site, "--login-id-is-openid", "--rate-limit", "0")
    with running_collector(kafka_bootstrap, topic_prefix, *options, log=tmp_path / "collector.log") as collector:
        sent = {method: run_page(browser, site, collector, method, user_id) for method in ("post", "get")}
        beacons = topic_name("beacons.raw", topic_prefix)
        values = wait_for(
            lambda: read_values(kafka_bootstrap, beacons),
            lambda vs: sum(v["event"] == "page_leave" for v in vs) >= 2,
            timeout=20,
        )
    assert len(values) == 6, sorted(v["event"] for v in values)
    by_id = {v["event_id"]: v for v in values}
    assert len(by_id) == 6  # none twice
    for method, payloads in sent.items():
        (pv,) = [p for p in payloads if p["e"] == "pv"]
        (click,) = [p for p in payloads if p["e"] == "ue"]
        pings = [p for p in payloads if p["e"] == "pp"]
        assert "co" in pv if method == "post" else "cx" in pv  # POST: JSON text; GET: base64url
        page_id = _web_page_id(pv)
        assert {_web_page_id(p) for p in pings} == {page_id}  # the pings share the page view's web_page id
        view, clicked, leave = by_id["sp-" + pv["eid"]], by_id["sp-" + click["eid"]], by_id[f"sp-pl-{page_id}"]
        assert view["event"] == "page_view" and view["page"] == "/index.html"
        assert clicked["event"] == "click" and clicked["element"] == "offer-link"
        assert leave["event"] == "page_leave" and leave["page"] == "/index.html"
        assert leave["duration_ms"] == max(int(p["dtm"]) for p in pings) - int(pv["dtm"]) >= 1000, method
        for v in (view, clicked, leave):
            assert v["anonymous_id"] == pv["duid"] and v["session_id"] == pv["sid"], method
            assert v["user"] == {"openid": user_id} and v["network"]["ip"] == "127.0.0.1"
    for v in values:  # the login id only as user.openid; the tracker's cookie nowhere
        rest = {**v, "user": {**v["user"], "openid": None}}
        assert user_id not in json.dumps(rest) and "_sp_" not in json.dumps(v)
    log = (tmp_path / "collector.log").read_text()
    assert "GET /i 200" in log and "POST /com.snowplowanalytics.snowplow/tp2 200" in log
    assert user_id not in log and pv["duid"] not in log

    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    canaries = tmp_path / "canaries.txt"
    ids = {user_id} | {p[k] for payloads in sent.values() for p in payloads for k in ("duid", "sid") if k in p}
    canaries.write_text("\n".join(sorted(ids)) + "\n")
    command = [sys.executable, "-m", "seaport.cli", "audit", "--warehouse", str(warehouse), "--canaries", str(canaries)]
    found = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert found.returncode == 0 and "clean" in found.stdout, found.stdout[-2000:] + found.stderr[-2000:]
