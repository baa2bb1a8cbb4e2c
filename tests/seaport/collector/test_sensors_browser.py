"""The real Sensors Data web SDK (sa-sdk-javascript 1.27.11) in headless Chromium, against the collector.

A page served by a test HTTP server on 127.0.0.1 (another port, so another origin than the
collector: CORS is exercised) loads `.cache/sdk/node_modules/sa-sdk-javascript/sensorsdata.min.js`
(installed by `scripts/setup.sh` with SEAPORT_SETUP_TEST_TOOLS=1) with its built-in PageLeave
plugin and autotrack clicks, and is opened once per `send_type`: image, ajax, beacon, and ajax
with `batch_send`. Each mode must land exactly one page view, one click and one page leave (with
its duration) on `beacons.raw`. The page is left by a single-page route change (the plugin's SPA
listener) in image, ajax and batch mode, and by really unloading it in beacon mode. After
`sensors.login(…)` the login id is only ever `user.openid`; ingest and audit find none of the ids.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from seaport.devtools.loadtest import running_collector
from seaport.kafka.clients import make_client
from seaport.kafka.topics import topic_name
from tests.helpers import read_all
from tests.pipelines.test_ingest import ingest
from tests.seaport.collector.test_tracker_browser import wait_for
from tests.test_privacy_e2e import audit

PROJECT_DIR = Path(__file__).resolve().parents[3]
SDK = PROJECT_DIR / ".cache" / "sdk" / "node_modules" / "sa-sdk-javascript" / "sensorsdata.min.js"
MODES = ("image", "ajax", "beacon", "batch")
LOGIN_MODE = "ajax"  # sensors.login() is called there, after its page view; later modes stay logged in

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>seaport × 神策</title>
<script src="/sdk/sensorsdata.min.js"></script>
<script>
  var mode = location.pathname.split('/')[1];
  var sensors = window.sensorsDataAnalytic201505;
  window.SA_SENDS = [];
  sensors.on('dataSendSuccess', function (e) { SA_SENDS.push(e.type + ' ok'); });
  sensors.on('dataSendFail', function (e) { SA_SENDS.push('FAIL ' + e.type + ' ' + e.status); });
  // page leaves of the first route only: the /next route is where the test leaves to
  sensors.use('PageLeave', {isCollectUrl: function (url) { return url.indexOf('/next') < 0; }});
  sensors.init({
    server_url: '%(collector)s/sa?project=default',
    send_type: mode === 'batch' ? 'ajax' : mode,
    batch_send: mode === 'batch' ? {send_interval: 500, datasend_timeout: 3000} : false,
    heatmap: {clickmap: 'default', scroll_notice_map: 'not_collect'},
    is_track_single_page: false,
    show_log: false
  });
  sensors.quick('autoTrack');
</script></head>
<body><main><h1>健康险</h1><button id="buy-now" type="button">立即投保</button></main></body></html>
"""


@pytest.fixture
def site() -> Iterator[tuple[int, dict]]:
    """The test site on 127.0.0.1: the SDK file and the page (any other path); its page has the
    collector's URL filled in once the collector runs (`config["collector"]`)."""
    config: dict[str, str] = {}

    class Site(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/sdk/sensorsdata.min.js":
                body, kind = SDK.read_bytes(), "application/javascript"
            else:
                body, kind = (PAGE % config).encode(), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], config
    finally:
        server.shutdown()
        server.server_close()


def test_real_sdk_in_every_send_mode(
    browser: webdriver.Chrome,
    site: tuple[int, dict],
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    key_file: Path,
) -> None:
    assert SDK.is_file(), "run SEAPORT_SETUP_TEST_TOOLS=1 scripts/setup.sh (npm ci of tests/sdk into .cache/sdk)"
    port, config = site
    page = f"http://127.0.0.1:{port}"
    login_id = f"test-openid-{random.Random(1202).getrandbits(64):016x}"
    beacons = topic_name("beacons.raw", topic_prefix)
    log = tmp_path / "collector.log"
    options = ("--cors-origin", page, "--login-id-is-openid")
    with running_collector(kafka_bootstrap, topic_prefix, *options, log=log) as collector:
        config["collector"] = collector
        started = time.time() * 1000
        sends, ids = {}, set()
        for mode in MODES:
            browser.get(f"{page}/{mode}/?plan=2")
            wait_until(browser, "return !!(window.sensors && sensors.store && sensors.store._state.distinct_id)")
            time.sleep(0.3)  # the page view is on its way
            if mode == LOGIN_MODE:
                browser.execute_script("sensors.login(arguments[0])", login_id)
            browser.find_element(By.ID, "buy-now").click()  # autotrack: $WebClick
            time.sleep(0.6)  # a visible duration on the page
            ids |= set(browser.execute_script("return [sensors.quick('getAnonymousID'), sensors.store._state.identities.$identity_cookie_id]"))  # fmt: skip
            if mode == "beacon":
                browser.get("about:blank")  # unload: the page leave goes by navigator.sendBeacon
            else:
                browser.execute_script(f"history.pushState({{}}, '', '/{mode}/next')")  # the SPA listener's leave

            def mode_left(values: list[dict], mode: str = mode) -> bool:  # batch: sent from localStorage every 500 ms
                return any(v["event"] == "page_leave" and v["page"].startswith(f"/{mode}/") for v in values)

            wait_for(lambda: [json.loads(r.value) for r in read(kafka_bootstrap, beacons)], mode_left)
            if mode != "beacon":
                sends[mode] = browser.execute_script("return SA_SENDS")
        time.sleep(1.0)  # anything sent twice would arrive by now
        records = read(kafka_bootstrap, beacons)
    values = [json.loads(r.value) for r in records]
    finished = time.time() * 1000

    # the ajax and batch answers reached the page across origins (CORS: a refused read is a failure)
    assert sends["image"] == [] and len(sends["ajax"]) == 4 and sends["batch"], (
        sends
    )  # ajax: view, $SignUp, click, leave
    assert all(s.startswith(("ajax_single ", "ajax_batch ")) for s in sends["ajax"] + sends["batch"]), sends
    # exactly one page view, click and page leave per mode
    for mode in MODES:
        mine = [v for v in values if v["page"] == f"/{mode}/?plan=2"]
        assert sorted(v["event"] for v in mine) == ["click", "page_leave", "page_view"], (mode, mine)
        view, tap, left = (next(v for v in mine if v["event"] == e) for e in ("page_view", "click", "page_leave"))
        assert started <= ts_ms(view["ts"]) < ts_ms(tap["ts"]) < ts_ms(left["ts"]) <= finished, mode
        assert tap["element"] == "buy-now"
        # the plugin times the page from its pageshow (after load), the page view goes out before: a bit less
        assert 600 <= left["duration_ms"] <= ts_ms(left["ts"]) - ts_ms(view["ts"]) + 50 < 20_000, mode
        after_login = MODES.index(mode) > MODES.index(LOGIN_MODE)
        assert ("user" in view) == after_login and ("user" in tap) == ("user" in left) == (
            after_login or mode == LOGIN_MODE
        )
    assert len(values) == 3 * len(MODES), [(v["event"], v["page"]) for v in values]
    assert len({v["event_id"] for v in values}) == len(values) and all(v["event_id"].startswith("sa-") for v in values)
    # one anonymous id throughout (the SDK's cookie), never the login id
    (anonymous_id,) = {v["anonymous_id"] for v in values}
    assert anonymous_id in ids and login_id not in ids
    assert all(r.key == anonymous_id.encode() for r in records)
    # the login id: only ever user.openid
    for record, value in zip(records, values, strict=True):
        expected = 1 if value.get("user") else 0
        assert record.value.count(login_id.encode()) == expected and login_id.encode() not in record.key
        assert value.get("user", {"openid": login_id}) == {"openid": login_id}
    written = log.read_text()
    assert "POST /sa.gif 200" in written and "GET /sa.gif 200" in written
    assert login_id not in written and anonymous_id not in written

    warehouse = tmp_path / "warehouse"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    found = audit(warehouse, sorted(ids | {login_id}), tmp_path)
    assert found.returncode == 0 and "clean" in found.stdout, found.stdout[-2000:] + found.stderr[-2000:]


def read(bootstrap: str, topic: str) -> list:
    client = make_client("confluent", bootstrap)
    try:
        return read_all(client, topic)
    finally:
        client.close()


def wait_until(driver: webdriver.Chrome, script: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not driver.execute_script(script):
        assert time.monotonic() < deadline, script
        time.sleep(0.05)


def ts_ms(value: str) -> int:
    return round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
